"""Interpreter overhead: a YAML definition run by DefinitionWorkflow vs the same steps hand-written, on the
same dev server in the same run (recording activities, so only workflow/interpreter cost differs).
Prints wall time per run (median of N, in flight together) and history events per run, as JSON.

    python bench/definitions.py [--runs 60] [--concurrency 10] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from temporalio import activity  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402
from temporalio.worker import Worker  # noqa: E402

from bench.handwritten import HandWrittenNurture  # noqa: E402
from core import search_attributes as sa  # noqa: E402
from core.devserver import temporal_cli  # noqa: E402
from core.process import exit_now  # noqa: E402
from definitions.loader import load  # noqa: E402
from models.payloads import MessageRequest, MessageResult, ScoreInput, ScoreResult, TaskInput  # noqa: E402
from workflows.definition import DefinitionRun, DefinitionWorkflow  # noqa: E402
from workflows.enrichment import EnrichmentWorkflow  # noqa: E402

DEFINITION = """schema: dealflow/v1
key: bench-nurture
trigger: {event: lead.created}
settings: {send_window: ignore}
steps:
  - {id: score, action: score_lead, save_as: score}
  - {id: welcome, action: send_email, with: {template: welcome}}
  - {id: first_text, action: send_sms, with: {template: first_touch}}
  - {id: call, if: 'score.probability > 0.7', action: create_task, with: {title: Call now}}
"""


@activity.defn(name="load_lead")
async def load_lead(ref: dict) -> dict:
    return {"id": ref["lead_id"], "source": "web_form", "status": "new", "tags": []}


@activity.defn(name="score_lead")
async def score_lead(request: ScoreInput) -> ScoreResult:
    return ScoreResult(probability=0.8, model_version="bench", reasons=[])


@activity.defn(name="send_message")
async def send_message(request: MessageRequest) -> MessageResult:
    return MessageResult(message_id="bench", status="sent")


@activity.defn(name="create_task")
async def create_task(request: TaskInput) -> str:
    return "task"


async def _measure(n: int, concurrency: int, start) -> tuple[list[float], float]:
    semaphore = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one() -> None:
        async with semaphore:
            t = time.perf_counter()
            await (await start()).result()
            latencies.append(time.perf_counter() - t)

    t = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return latencies, time.perf_counter() - t


async def main(runs: int, concurrency: int, rounds: int) -> dict:
    definition = load(DEFINITION, "bench.yaml")
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=temporal_cli(),
                                                data_converter=pydantic_data_converter, search_attributes=sa.ALL)
    try:
        client, queue = env.client, f"bench-{uuid.uuid4().hex[:6]}"

        def interpreted():
            lead = f"ld_{uuid.uuid4().hex[:8]}"
            return client.start_workflow(DefinitionWorkflow.run, DefinitionRun(tenant_id="bench", subject_id=lead,
                                                                                definition=definition),
                                         id=f"def-{lead}", task_queue=queue)

        def handwritten():
            lead = f"ld_{uuid.uuid4().hex[:8]}"
            return client.start_workflow(HandWrittenNurture.run, lead, id=f"hand-{lead}", task_queue=queue)

        async with Worker(client, task_queue=queue, workflows=[DefinitionWorkflow, HandWrittenNurture,
                                                               EnrichmentWorkflow],
                          activities=[load_lead, score_lead, send_message, create_task]):
            await _measure(10, concurrency, interpreted)  # warm-up
            await _measure(10, concurrency, handwritten)
            results = {"interpreted": [], "handwritten": []}
            for _ in range(rounds):  # interleaved rounds
                results["interpreted"].append(await _measure(runs, concurrency, interpreted))
                results["handwritten"].append(await _measure(runs, concurrency, handwritten))
            events = {}
            for name, start in (("interpreted", interpreted), ("handwritten", handwritten)):
                handle = await start()
                await handle.result()
                events[name] = len((await handle.fetch_history()).events)
    finally:
        await env.shutdown()

    def summary(name):
        latencies = [x for lat, _ in results[name] for x in lat]
        throughput = [runs / total for _, total in results[name]]
        return {"median_ms": round(statistics.median(latencies) * 1000, 1),
                "runs_per_s": round(statistics.median(throughput), 1), "history_events": events[name]}

    interp, hand = summary("interpreted"), summary("handwritten")
    # Each round's ratio of medians too: the machine's noise shows in their spread.
    round_ratios = [round(statistics.median(i) / statistics.median(h), 3)
                    for (i, _), (h, _) in zip(results["interpreted"], results["handwritten"], strict=True)]
    return {"benchmark": "definitions", "runs_per_round": runs, "rounds": rounds, "concurrency": concurrency,
            "interpreted": interp, "handwritten_baseline": hand,
            "latency_ratio": round(interp["median_ms"] / hand["median_ms"], 3),
            "round_ratios": round_ratios, "median_round_ratio": statistics.median(round_ratios),
            "history_events_ratio": round(interp["history_events"] / hand["history_events"], 3),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.runs, args.concurrency, args.rounds)), indent=2))
    exit_now(0)  # the Temporal runtime's threads can abort interpreter finalization
