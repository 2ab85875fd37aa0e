"""The shipped library: every definition validates, and each one's dry run takes the expected path."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
import subprocess
from pathlib import Path

import pytest

from services.dry_run import dry_run
from definitions.loader import load
from providers.templates import builtin_templates
from tests.integration.test_cli import DEALFLOW, _env

# Arizona keeps no daylight saving: the paths run for up to 50 simulated days, and a wait is a length of time, so
# across a change in a zone that keeps it "day 43 09:00" would read 10:00 (a real run would do the same).
PHOENIX = "America/Phoenix"
LIBRARY = sorted((Path(__file__).resolve().parents[2] / "definitions" / "library").glob("*.yaml"))
SAMPLE = {"id": "ld_sample", "first_name": "Maria", "source": "web_form", "status": "new", "tags": ["probate"],
          "score": 0.4, "timezone": PHOENIX}


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
    "web-lead-nurture.yaml": ["day 0 09:00 welcome send_email welcome: sent",
                              "day 0 09:00 first_text send_sms first_touch: sent",
                              "day 0 09:00 contacted set_status contacted",
                              "day 2 09:00 wait_reply lead.replied timed out",
                              "day 2 09:00 nudge send_sms nudge_1: sent", "day 2 09:00 route otherwise"],
    "speed-to-lead.yaml": ["day 0 09:00 welcome send_email welcome: sent",
                           "day 0 09:00 first_touch send_sms first_touch: sent",
                           "day 0 09:00 contacted set_status contacted",
                           "day 2 09:00 wait_reply lead.replied timed out", "day 2 09:00 nudge send_sms nudge_1: sent"],
    "cant-reach.yaml": ["day 2 09:00 gap_0 waited 2d", "day 2 09:00 attempt_1 send_sms nudge_1: sent"],
    "deal-under-contract.yaml": ["day 0 09:00 checklist all done",
                                 "day 7 09:00 title_check create_task 'Check title status and the closing date'"],
    # Nobody signs in the dry run: the wait ends with the envelope's expiry (7d and a day), then the task.
    "purchase-agreement.yaml": ["day 8 09:00 agreement request_signature purchase_agreement: no end heard",
                                "day 8 09:00 call_seller create_task 'Purchase agreement not signed - call the seller'"],
    "accreditation-renewal.yaml": ["day 0 09:00 ask send_email accreditation_renewal: sent",
                                   "day 0 09:00 chase create_task 'Collect renewed accreditation evidence' for owner"],
    "investor-funding.yaml": ["day 5 09:00 wire investor.funded timed out",
                              "day 5 09:00 chase create_task 'No funds received 5 days after commitment - call the "
                              "investor' for owner"],
    "offer-follow-up.yaml": ["day 1 09:00 day_one waited 1d", "day 1 09:00 check_in send_sms offer_follow_up: sent"],
    # No answer at all: intro, a text after 3 days, no meeting, the 30-day check-in, then a review task.
    "investor-capital-raise.yaml": [
        "day 0 09:00 size tier", "day 0 09:00 intro send_email investor_intro: sent",
        "day 3 09:00 intro_reply investor.replied timed out", "day 3 09:00 text_follow_up send_sms investor_follow_up: sent",
        "day 13 09:00 meeting meeting.booked timed out", "day 13 09:00 after_meeting otherwise",
        "day 43 09:00 check_in send_email investor_check_in: sent",
        "day 50 09:00 review create_task 'Quiet for six weeks - review, or record investor.passed'"],
}


DEAL_SAMPLE = {"id": "op_sample", "stage": "under_contract", "pipeline": "acquisition", "lead_id": "ld_sample",
               "timezone": PHOENIX, "lead": SAMPLE}
INVESTOR_SAMPLE = {"id": "iv_sample", "name": "Dana Whitfield", "accredited": True, "status": "prospect",
                   "capital_available": 100000.0, "preferences": {"markets": ["TX"]}, "tags": [],
                   "timezone": PHOENIX}
MONDAY = 0  # the library's paths are written for a run that starts on a Monday (send windows skip weekends)
SAMPLES = {"lead": SAMPLE, "deal": DEAL_SAMPLE, "investor": INVESTOR_SAMPLE}


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: p.name)
async def test_library_dry_runs(path):
    definition = load(path.read_text(), path.name)
    result = await dry_run(definition, SAMPLES[definition.subject], [], weekday=MONDAY)
    assert result["status"] in ("completed", "stopped"), result["lines"]
    for line in EXPECTED.get(path.name, []):
        assert line in result["lines"], result["lines"]


async def test_a_reply_in_the_dry_run_changes_the_path():
    path = next(p for p in LIBRARY if p.name == "web-lead-nurture.yaml")
    result = await dry_run(load(path.read_text(), path.name), SAMPLE,
                           [{"after": "1d", "name": "lead.replied", "data": {"text": "call me"}}], weekday=MONDAY)
    assert "day 1 09:00 wait_reply lead.replied received" in result["lines"]
    assert any(line.startswith("day 1 09:00 call_now create_task") for line in result["lines"])
    assert "day 1 09:00 nudge skipped (if was false)" in result["lines"]


async def test_cant_reach_stops_its_attempts_when_the_lead_answers_and_hands_them_to_a_rep():
    path = next(p for p in LIBRARY if p.name == "cant-reach.yaml")
    result = await dry_run(load(path.read_text(), path.name), {**SAMPLE, "status": "contacted"},
                           [{"after": "4d", "name": "lead.replied", "data": {"text": "who is this?"}}], weekday=MONDAY)
    lines = result["lines"]
    assert "day 2 09:00 attempt_1 send_sms nudge_1: sent" in lines, lines
    assert any(line.startswith("day 4 09:00 call_back create_task") for line in lines), lines
    assert not any(" attempt_3 " in line for line in lines), lines  # the attempts lane stopped at the answer


async def test_capital_raise_meeting_and_commitment_paths():
    path = next(p for p in LIBRARY if p.name == "investor-capital-raise.yaml")
    definition = load(path.read_text(), path.name)
    major = {**INVESTOR_SAMPLE, "capital_available": 500000.0}
    # The meeting's time comes with the event: next steps go out two hours after it, not when it is booked.
    meeting_at = (datetime.now(UTC) + timedelta(days=12)).replace(hour=20, minute=0, second=0, microsecond=0)  # after day 2 whichever Monday day 0 is
    booked = await dry_run(definition, major, [
        {"after": "1d", "name": "investor.replied", "data": {"text": "Interested, call me"}},
        {"after": "2d", "name": "meeting.booked", "data": {"at": meeting_at.isoformat()}}], weekday=MONDAY)
    lines = booked["lines"]
    assert any(line.startswith("day 0 09:00 personal_intro create_task") for line in lines), lines
    assert "day 1 09:00 text_follow_up skipped (if was false)" in lines
    assert "day 2 09:00 after_meeting arm 1: meeting != null" in lines
    after = next(line for line in lines if " next_steps send_email investor_deal_summary: sent" in line)
    assert after.endswith("investor_deal_summary: sent") and not after.startswith("day 2 09:00"), lines
    # A commitment ends the run wherever it is (here: waiting for the meeting), and nothing else is sent.
    committed = await dry_run(definition, INVESTOR_SAMPLE, [{"after": "5d", "name": "investor.committed"}],
                              weekday=MONDAY)
    assert committed["status"] == "exited"
    assert committed["lines"][-1] == "day 5 09:00 meeting exited: exit_when event investor.committed"
    assert not any("personal_intro create_task" in line for line in committed["lines"])


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
                          str(events), "--start-on", "Monday"], cwd=tmp_path, env=_env(tmp_path),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "day 1 09:00 wait_reply lead.replied received" in run.stdout and "completed" in run.stdout
    assert "day 0 is Monday" in run.stdout, run.stdout
    for option, value in (("--start-on", "someday"), ("--start-at", "9am")):
        refused = subprocess.run([*DEALFLOW, "definitions", "test", str(nurture), option, value], cwd=tmp_path,
                                 env=_env(tmp_path), capture_output=True, text=True, timeout=120)
        assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
        assert f"{option} '{value}': not a" in refused.stderr, refused.stderr
