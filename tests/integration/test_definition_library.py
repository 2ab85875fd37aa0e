"""The shipped library: every definition validates, and each one's dry run takes the expected path."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from definitions.dryrun import dry_run
from definitions.loader import load
from providers.templates import builtin_templates
from tests.integration.test_cli import DEALFLOW, _env

LIBRARY = sorted((Path(__file__).resolve().parents[2] / "definitions" / "library").glob("*.yaml"))
SAMPLE = {"id": "ld_sample", "first_name": "Maria", "source": "web_form", "status": "new", "tags": ["probate"],
          "score": 0.4, "timezone": "America/Chicago"}


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: p.name)
def test_library_definitions_validate_and_use_real_templates(path):
    definition = load(path.read_text(), path.name)

    def templates(steps):
        for step in steps:
            if step.action in ("send_email", "send_sms"):
                yield step.params["template"], "email" if step.action == "send_email" else "sms"
            for _, arm in step.branches:
                yield from templates(arm)
            for lane in step.lanes:
                yield from templates(lane)
            yield from templates(step.body)

    for template, channel in templates(definition.steps):
        assert builtin_templates()[template].channel == channel, template


EXPECTED = {
    "web-lead-nurture.yaml": ["day 0 09:00 score score_lead 40%", "day 0 09:00 welcome send_email welcome: sent",
                              "day 0 09:00 first_text send_sms first_touch: sent", "day 2 09:00 wait_reply lead.replied timed out",
                              "day 2 09:00 nudge send_sms nudge_1: sent", "day 2 09:00 route otherwise"],
    "deal-under-contract.yaml": ["day 0 09:00 checklist all done",
                                 "day 7 09:00 title_check create_task 'Check title status and the closing date'"],
    "offer-follow-up.yaml": ["day 1 09:00 day_one waited 1 day, 0:00:00", "day 1 09:00 check_in send_sms offer_follow_up: sent"],
}


DEAL_SAMPLE = {"id": "op_sample", "stage": "under_contract", "pipeline": "acquisition", "lead_id": "ld_sample",
               "timezone": "America/Chicago", "lead": SAMPLE}


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: p.name)
async def test_library_dry_runs(path):
    definition = load(path.read_text(), path.name)
    result = await dry_run(definition, DEAL_SAMPLE if definition.subject == "deal" else SAMPLE, [])
    assert result["status"] in ("completed", "stopped"), result["lines"]
    for line in EXPECTED.get(path.name, []):
        assert line in result["lines"], result["lines"]


async def test_a_reply_in_the_dry_run_changes_the_path():
    path = next(p for p in LIBRARY if p.name == "web-lead-nurture.yaml")
    result = await dry_run(load(path.read_text(), path.name), SAMPLE,
                           [{"after": "1d", "name": "lead.replied", "data": {"text": "call me"}}])
    assert "day 1 09:00 wait_reply lead.replied received" in result["lines"]
    assert any(line.startswith("day 1 09:00 call_now create_task") for line in result["lines"])
    assert "day 1 09:00 nudge skipped (if was false)" in result["lines"]


def test_cli_validate_and_test(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema: dealflow/v1\nkey: bad\ntrigger: {event: lead.created}\nsteps:\n  - {id: a, acton: score_lead}\n")
    out = subprocess.run([*DEALFLOW, "definitions", "validate", str(bad), *map(str, LIBRARY)], cwd=tmp_path,
                         env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert f"{bad}:5:5: a step needs exactly one of" in out.stderr
    assert f"{bad}:5:13: unknown key 'acton' in a step (did you mean 'action'?)" in out.stderr
    assert out.stdout.count("✓") == len(LIBRARY)

    subject, events = tmp_path / "sample.json", tmp_path / "events.yaml"
    subject.write_text(json.dumps(SAMPLE))
    events.write_text("- {after: 1d, name: lead.replied, data: {text: yes}}\n")
    nurture = next(p for p in LIBRARY if p.name == "web-lead-nurture.yaml")
    run = subprocess.run([*DEALFLOW, "definitions", "test", str(nurture), "--subject", str(subject), "--events",
                          str(events)], cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "day 1 09:00 wait_reply lead.replied received" in run.stdout and "completed" in run.stdout
