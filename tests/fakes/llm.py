"""An OpenAI-compatible chat-completions endpoint for the reply-intent LLM: answers with the scripted content."""

from __future__ import annotations

from tests.fakes.server import FakeServer, Recorded, Reply


class ChatCompletionsFake(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.content = '{"intent": "asks_offer", "confidence": 0.91}'

    def handle(self, request: Recorded) -> Reply:
        if request.path != "/v1/chat/completions":
            return Reply(404, {"error": {"message": "no such route"}})
        return Reply(200, {"id": "chatcmpl-1", "object": "chat.completion",
                           "choices": [{"index": 0, "message": {"role": "assistant", "content": self.content},
                                        "finish_reason": "stop"}]})
