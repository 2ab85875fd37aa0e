"""Every class of validation error, with its line and column, reported all at once."""

from __future__ import annotations

import textwrap

import pytest

from definitions.loader import DefinitionInvalid, load

HEADER = """schema: dealflow/v1
key: test-def
trigger: {event: lead.created}
"""


def problems(body: str, header: str = HEADER) -> list[str]:
    with pytest.raises(DefinitionInvalid) as failure:
        load(header + textwrap.dedent(body), "t.yaml")
    return str(failure.value).splitlines()


def test_a_valid_definition_compiles():
    definition = load(HEADER + textwrap.dedent("""
        version: 2
        enrollment: {reenroll: {after: 30d}, exit_when: [{event: lead.replied}, {condition: 'lead.status == "dead"'}]}
        settings: {defaults: {timeout: 2m, retry: {max_attempts: 3, initial: 10s, backoff: 2}}}
        steps:
          - {id: score, action: score_lead, save_as: score}
          - {id: welcome, action: send_email, with: {template: welcome}}
          - {id: wait_reply, wait_for: {event: lead.replied, timeout: 2d}, save_as: reply}
          - {id: nudge, if: 'reply == null', action: send_sms, with: {template: nudge_1}}
          - id: route
            branch:
              - when: 'score.probability > 0.7'
                steps: [{action: create_task, with: {title: Call now, due_in: 1h}}]
              - otherwise: [{id: cool_off, wait: 7d}]
    """), "t.yaml")
    assert definition.version == 2 and definition.reenroll_after_seconds == 30 * 86400
    assert [s.id for s in definition.steps] == ["score", "welcome", "wait_reply", "nudge", "route"]
    assert definition.steps[2].timeout_seconds == 2 * 86400
    route = definition.steps[4]
    assert route.branches[0][0] == "score.probability > 0.7" and route.branches[1][0] is None
    assert route.branches[0][1][0].params == {"title": "Call now", "due_in": 3600.0}
    assert definition.default_retry.max_attempts == 3 and len(definition.content_hash) == 64


def test_typo_in_a_key_says_line_column_and_what_was_meant():
    assert problems("""
        steps:
          - {id: welcome, action: send_email, whith: {template: welcome}}
    """) == ["t.yaml:6:27: send_email needs 'template' in 'with'",
             "t.yaml:6:39: unknown key 'whith' in a step (did you mean 'with'?)"]


def test_every_error_class_at_once():
    found = problems("""
        enrollment: {exit_when: [{event: lead.optedout}]}
        stepz: []
        steps:
          - {id: a, action: send_emial, with: {template: x}}
          - {id: a, action: notify}
          - {id: c, action: create_task, with: {titel: x}}
          - {id: d, action: set_status, with: {status: qualifed}}
          - {id: e, wait: 7days}
          - {id: f, wait_for: {event: lead.replied}}
          - {id: g, if: 'lead.score >', action: score_lead}
          - {id: h, if: 'scor.probability > 1', action: score_lead}
          - {id: i, for_each: {in: '[1,2]', as: x, steps: [{action: score_lead}]}}
          - {id: j, branch: [{otherwise: [{stop: done}]}, {when: 'true', steps: [{stop: x}]}]}
          - {id: k, stop: finished}
          - {id: l, action: score_lead}
    """)
    expected = [
        "t.yaml:5:34: unknown event 'lead.optedout' (did you mean 'lead.opted_out'?)",
        "t.yaml:6:1: unknown key 'stepz' in the definition (did you mean 'steps'?)",
        "t.yaml:8:21: unknown action 'send_emial' (did you mean 'send_email'?)",
        "t.yaml:9:10: duplicate step id 'a' (first on line 8)",
        "t.yaml:9:21: notify needs 'to' in 'with'",
        "t.yaml:9:21: notify needs 'title' in 'with'",
        "t.yaml:10:21: create_task needs 'title' in 'with'",
        "t.yaml:10:41: unknown parameter 'titel' for create_task (did you mean 'title'?)",
        "t.yaml:11:48: unknown status 'qualifed' (did you mean 'qualified'?) (one of contacted, dead, needs_review, new, nurturing, qualified)",
        "t.yaml:12:19: '7days' is not a duration like 30s, 15m, 2h, 3d or 1w",
        "t.yaml:13:23: wait_for needs a timeout (nothing may wait forever)",
        "t.yaml:14:17: expression does not compile: lead.score >",
        "t.yaml:15:17: unknown variable 'scor' in expression",
        "t.yaml:16:23: for_each needs 'max_items' (loops must be bounded)",
        "t.yaml:17:22: otherwise must be the last arm (arms after it could never run)",
        "t.yaml:19:5: unreachable: it comes after the unconditional stop on line 18",
    ]
    assert found == expected


def test_yaml_syntax_errors_have_a_position():
    found = problems("""
        steps:
          - {id: a, action: score_lead
    """)
    assert len(found) == 1 and found[0].startswith("t.yaml:") and "YAML:" in found[0]


def test_top_level_problems():
    found = problems("steps: []\n", header="schema: dealflow/v2\nkey: Bad Key\ntrigger: {event: lead.created}\n")
    assert found == ["t.yaml:1:9: schema must be dealflow/v1",
                     "t.yaml:2:6: key must be lower-case letters, digits and '-' (2-61)",
                     "t.yaml:4:8: 'steps' must be a non-empty list of steps"]


def test_send_window_settings():
    definition = load(HEADER + "settings: {send_window: {days: mon-fri, from: '09:00', to: '17:00'}}\n"
                      "steps: [{action: score_lead}]\n", "t.yaml")
    assert definition.send_window == ("mon-fri", "09:00", "17:00") and definition.respect_send_window
    found = problems("settings: {send_window: {days: mon-fri, from: '19:00', to: '17:00'}}\nsteps: [{action: score_lead}]\n")
    assert found == ["t.yaml:4:25: send_window: send window opens at 19:00 but closes at 17:00: opening must come first"]


INVESTOR = """schema: dealflow/v1
key: raise
subject: investor
"""


HEARD = ("accreditation.expired, accreditation.expiring, accreditation.recorded, document.signed, "
         "investor.committed, investor.created, investor.funded, investor.opted_out, investor.passed, "
         "investor.reopened, investor.replied, investor.soft_committed, investor.waitlisted, investor.withdrawn, "
         "meeting.booked, message.bounced, message.clicked, message.delivered, message.opened")


def test_each_subject_hears_only_its_own_events_actions_and_variables():
    found = problems("""
        trigger: {event: lead.created, when: 'investor.accredited && lead.source == "web_form"'}
        enrollment: {exit_when: [{event: investor.commited}, {event: deal.stage_changed}]}
        steps:
          - {id: score, action: score_lead}
          - {id: intro, action: send_email, with: {template: investor_intro}}
          - {id: tier, set: {big: 'investor.capital_available > 100000.0'}}
          - {id: big_only, if: 'big', action: create_task, with: {title: Call}}
    """, header=INVESTOR)
    assert found == [
        f"t.yaml:5:18: event 'lead.created' never happens to an investor (an investor definition hears: {HEARD})",
        "t.yaml:5:38: 'lead' is not available in a definition about an investor",
        "t.yaml:6:34: unknown event 'investor.commited' (did you mean 'investor.committed'?)",
        f"t.yaml:6:62: event 'deal.stage_changed' never happens to an investor (an investor definition hears: "
        f"{HEARD})",
        "t.yaml:8:25: action 'score_lead' acts on a lead; this definition's subject is an investor",
        "t.yaml:11:24: unknown variable 'big' in expression (did you mean 'vars.big'?)",
    ]


def test_an_investor_definition_compiles():
    definition = load(INVESTOR + textwrap.dedent("""
        trigger: {event: investor.created, when: 'investor.accredited'}
        enrollment: {exit_when: [{event: investor.committed}]}
        steps:
          - {id: tier, set: {big: 'investor.capital_available != null && investor.capital_available > 1e5'}}
          - {id: intro, action: send_email, with: {template: investor_intro}}
          - {id: call, if: 'vars.big', action: create_task, with: {title: Call}}
          - {id: answer, wait_for: {event: investor.replied, timeout: 3d}}
    """), "t.yaml")
    assert definition.subject == "investor" and definition.trigger_event == "investor.created"


def test_set_stage_is_for_deals_and_knows_the_stages():
    found = problems("""
        steps:
          - {id: move, action: set_stage, with: {stage: under_contrat}}
          - {id: next, action: run_definition, with: {key: Closing Tasks}}
    """)
    assert found == [
        "t.yaml:6:24: action 'set_stage' moves a deal; this definition's subject is a lead (use subject: deal)",
        "t.yaml:6:49: unknown stage 'under_contrat' (did you mean 'under_contract'?) (one of appointment_set, "
        "assigned, buyer_offer, closed_lost, closed_won, contacted, marketing, new, offer_made, showing, "
        "under_contract)",
        "t.yaml:7:52: key must be another definition's key (lower-case letters, digits and '-')",
    ]


def test_http_call_checks_its_address_method_and_body_expressions():
    found = problems("""
        steps:
          - {id: ok, action: http_call, with: {url: 'https://hooks.zapier.com/x', body: {id: 'lead.id'}}}
          - {id: bad, action: http_call, with: {url: 'ftp://x', method: FETCH, body: {a: 'leed.id'}}}
          - {id: flat, action: http_call, with: {url: 'https://x.test', body: lead.id}}
    """)
    assert found == [
        "t.yaml:7:46: 'url' must be an http:// or https:// address",
        "t.yaml:7:65: method must be one of GET, POST, PUT, PATCH, DELETE",
        "t.yaml:7:82: unknown variable 'leed' in expression (did you mean 'lead'?)",
        "t.yaml:8:71: 'body' is a mapping of names to expressions, e.g. {lead_id: 'lead.id', hot: "
        "'score.probability > 0.7'}",
    ]


def test_replaces_names_other_definitions():
    steps = "steps: [{id: a, action: send_email, with: {template: welcome}}]\n"
    definition = load(HEADER + "replaces: [speed-to-lead, cant-reach, speed-to-lead]\n" + steps, "t.yaml")
    assert definition.replaces == ["speed-to-lead", "cant-reach"]
    assert load(HEADER + steps, "t.yaml").replaces == []
    assert problems("replaces: speed-to-lead\n" + steps) == [
        "t.yaml:4:11: replaces is a list of definition keys, like [speed-to-lead]"]
    assert problems("replaces: [test-def]\n" + steps) == ["t.yaml:4:11: a definition cannot replace itself"]
    assert problems("replaces: [Not A Key]\n" + steps) == [
        "t.yaml:4:11: replaces is a list of definition keys, like [speed-to-lead]"]


def test_lead_scored_is_a_lead_event_with_its_reason():
    header = "schema: dealflow/v1\nkey: scored\ntrigger: {event: lead.scored, when: 'event.reason == \"intake\"'}\n"
    steps = "steps: [{id: a, action: create_task, with: {title: Call}}]\n"
    assert load(header + steps, "t.yaml").trigger_event == "lead.scored"
    found = problems(steps, header=header.replace("key: scored\n", "key: scored\nsubject: investor\n"))
    assert len(found) == 1 and "event 'lead.scored' never happens to an investor" in found[0]


def test_expressions_too_long_too_deep_or_with_too_many_calls_are_refused_at_their_line():
    """A CEL program cannot be interrupted inside a workflow task: its size is bounded before it is published."""
    long_one = " || ".join(f'lead.source == "s{i}"' for i in range(60))
    deep = "(" * 30 + "lead.score > 0.5" + ")" * 30
    calls = " && ".join(["size(lead.tags) > 0"] * 20)
    found = problems(f"""
        steps:
          - {{id: a, if: '{long_one}', action: score_lead}}
          - {{id: b, if: '{deep}', action: score_lead}}
          - {{id: c, if: '{calls}', action: score_lead}}
          - {{id: d, if: 'size(lead.tags) > 0 && lead.score > 0.5', action: score_lead}}
    """)
    assert len(found) == 3, found
    assert found[0].startswith("t.yaml:6:") and "characters (at most 1,000)" in found[0]
    assert found[1].startswith("t.yaml:7:") and "nested 30 deep (at most 24)" in found[1]
    assert found[2].startswith("t.yaml:8:") and "20 function calls (at most 16)" in found[2]
