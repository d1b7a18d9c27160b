"""Every shell, Python and SQL example of README.md and docs/*.md is either run by
tests/integration/docs/test_docs_examples.py or says why not; every fence names its language."""

from __future__ import annotations

from tests.doc_examples import CODE_LANGS, blocks, matches


def test_every_code_block_is_run_or_says_why_not() -> None:
    found = blocks()
    assert len(found) > 30
    unmarked = [f"{b.where} ```{b.lang}" for b in found
                if b.lang in CODE_LANGS and b.mark not in ("run", "not-run")]
    assert unmarked == [], "mark these `run` or `not-run: <reason>` (tests/doc_examples.py)"
    no_reason = [b.where for b in found if b.mark == "not-run" and len(b.reason) < 10]
    assert no_reason == []
    no_lang = [b.where for b in found if not b.lang]
    assert no_lang == [], "give these fences a language (text for plain text)"
    stray = [b.where for b in found if b.mark.startswith("unknown") or
             (b.mark in ("run", "output") and b.lang not in CODE_LANGS | {"text"})]
    assert stray == []


def test_outputs_follow_a_run_block() -> None:
    found = blocks()
    claimed = {b.expected for b in found if b.expected is not None}
    orphans = [b.where for b in found if b.mark == "output" and b.code not in claimed]
    assert orphans == []


def test_runnable_shell_examples_use_no_tool_a_machine_may_lack() -> None:
    missing_tools = {"nc", "ncat", "netcat", "socat", "jq"}
    uses = [b.where for b in blocks() if b.mark == "run" and
            missing_tools & set(b.code.replace("|", " ").split())]
    assert uses == []


def test_expected_output_matching() -> None:
    assert matches('{"id": 1, "endpoint": "demo-llm", ...}',
                   '{"id":1,"endpoint":"demo-llm","totreqs":3}\n')
    assert matches("sent 1, rejected 0\n", "sent 1, rejected 0\n")
    assert not matches("sent 1, rejected 0\n", "sent 0, rejected 1\n")
    assert not matches('{"id": 1, ...}', '{"id":12}')
    assert matches('{"id": 1...}', '{"id":12}')
