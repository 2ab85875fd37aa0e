"""Record LeadWorkflow histories for the replay tests: `python -m tests.histories.record`.

Runs the workflow on the time-skipping test server with recording activities and writes the
history JSON next to this file. Re-record only on purpose (a new behaviour worth pinning); keep the
old files: they are the running workflows that new code must still replay.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from core import search_attributes as sa
from core.devserver import time_skipping_server_binary
from models.payloads import LeadEvent, LeadWorkflowInput
from tests.integration.test_lead_workflow import Recorded, _start_args
from workflows.lead import LeadWorkflow

HERE = Path(__file__).resolve().parent


async def record(name: str = "lead_workflow_v1_signals_and_close") -> Path:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=time_skipping_server_binary(), data_converter=pydantic_data_converter)
    try:
        await env.client.operator_service.add_search_attributes(AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={k.name: IndexedValueType.ValueType(k.indexed_value_type) for k in sa.ALL}))
        lead_id = "ld_history0001"
        async with Worker(env.client, task_queue="history", workflows=[LeadWorkflow],
                          activities=Recorded().activities()):
            handle = await env.client.start_workflow(
                LeadWorkflow.run, LeadWorkflowInput(tenant_id="acme", lead_id=lead_id, source="web_form"),
                start_signal="submitted", start_signal_args=[LeadEvent(event_id=lead_id, data={"channel": "api"})],
                **_start_args(lead_id, "history"))
            await handle.signal(LeadWorkflow.note, LeadEvent(event_id="n1", note="left voicemail"))
            await handle.signal(LeadWorkflow.replied, LeadEvent(event_id="r1", data={"text": "call me"}))
            await handle.signal(LeadWorkflow.replied, LeadEvent(event_id="r1", data={"text": "call me"}))
            await handle.signal(LeadWorkflow.close, LeadEvent(event_id="c1", note="sold elsewhere"))
            await handle.result()
            history = await handle.fetch_history()
    finally:
        await env.shutdown()
    path = HERE / f"{name}.json"
    path.write_text(json.dumps(json.loads(history.to_json()), indent=1) + "\n")
    return path


if __name__ == "__main__":
    print(asyncio.run(record()))
