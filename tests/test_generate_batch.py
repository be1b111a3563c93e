"""teacher=openai_batch: a Batch API round trip against the fake server, and resume by batch id."""

from __future__ import annotations

import json

import pytest
from tests.helpers.generate_kit import read_jsonl, run, tiny
from tests.helpers.openai_server import key_of

from lamini_lm.errors import UserError


def _batch(out, url, *extra):
    return tiny(out, url, "teacher=openai_batch", "teacher.poll_interval=0.05", *extra)


def test_batch_round_trip_gives_the_sync_dataset(server, api_key, tmp_path):
    records = run(_batch(tmp_path / "b", server.base_url))
    assert len(records) == 18 and len(server.batches) == 2  # one instruction batch, one response batch
    assert all(b["status"] == "completed" for b in server.batches.values())
    sync = run(tiny(tmp_path / "s", server.base_url))
    # the fake server's output order is shuffled: joining by custom_id restores the same dataset
    assert [(r["instruction"], r["response"]) for r in records] == [(r["instruction"], r["response"]) for r in sync]
    events = read_jsonl(tmp_path / "b" / "batches" / "responses.jsonl")
    assert [e["event"] for e in events] == ["uploaded", "created", "collected"]
    rep = json.loads((tmp_path / "b" / "report.json").read_text())
    assert rep["responses"]["teacher"]["cost_usd"] > 0


def test_batch_resumes_by_batch_id_and_never_resubmits(server, api_key, tmp_path):
    out = tmp_path / "b"
    server.batch_polls = 10**9  # the batch stays in progress
    with pytest.raises(UserError, match=r"1 batches still running.*run the same command again later"):
        run(_batch(out, server.base_url, "teacher.max_wait=0.2"))
    assert len(server.batches) == 1
    # a kill between creating a batch and recording it: the rerun finds it by its input file
    state = out / "batches" / "instructions.jsonl"
    state.write_text("".join(x + "\n" for x in state.read_text().splitlines() if '"created"' not in x))
    with open(state, "a") as f:
        f.write('{"event": "created", "file_id": "fi')  # and a kill in the middle of writing an event
    server.batch_polls = 1
    records = run(_batch(out, server.base_url))
    assert len(records) == 18
    assert [e["event"] for e in read_jsonl(state)] == ["uploaded", "created", "collected"]  # cut, not glued on
    assert len(server.batches) == 2  # the running one was collected, only responses got a new batch
    assert max(server.completed().values()) == 1


def test_failed_batch_lines_are_retried_on_rerun(server, api_key, tmp_path):
    out = tmp_path / "b"
    flaky = {"on": True}
    server.script = lambda body, attempt: "500" if flaky["on"] and "system" in json.dumps(body) and \
        key_of(body) < "8" else None
    with pytest.raises(UserError, match=r"responses requests failed \(batch: boom\)"):
        run(_batch(out, server.base_url))
    n_done = len(read_jsonl(out / "requests" / "responses.jsonl"))
    assert 0 < n_done < 18
    flaky["on"] = False
    assert len(run(_batch(out, server.base_url))) == 18
    last = list(server.batches.values())[-1]
    assert last["request_counts"]["total"] == 18 - n_done  # only the failed ones were resubmitted


@pytest.mark.parametrize("end", ["expired", "cancelled"])
def test_expired_or_cancelled_batch_keeps_its_answers_and_rerun_sends_only_the_rest(server, api_key, tmp_path, end):
    out = tmp_path / "b"
    run(_batch(out, server.base_url, "stage=instructions"))
    server.batch_end, server.batch_partial = end, 0.5  # the response batch ends half done
    with pytest.raises(UserError, match=rf"9 responses requests failed \(batch: .*batch_{end}.*\).*run the same command"):
        run(_batch(out, server.base_url))
    answered = {r["id"] for r in read_jsonl(out / "requests" / "responses.jsonl")}
    assert len(answered) == 9
    server.batch_end = "completed"
    records = run(_batch(out, server.base_url))
    assert len(records) == 18
    last = list(server.batches.values())[-1]
    assert last["request_counts"]["total"] == 9  # only the unanswered half was resubmitted
    sent_again = {json.loads(x)["custom_id"] for x in server.files[last["input_file_id"]].decode().splitlines()}
    assert not sent_again & answered
    assert max(server.completed().values()) == 1


def test_batch_rejected_at_validation_names_the_reason_and_rerun_submits_again(server, api_key, tmp_path):
    out = tmp_path / "b"
    server.batch_end = "failed"
    with pytest.raises(UserError, match=r"instructions requests failed \(batch batch_\w+ failed: The model `gpt-x` "
                                        r"does not exist\.\)"):
        run(_batch(out, server.base_url))
    server.batch_end = "completed"
    assert len(run(_batch(out, server.base_url))) == 18


def test_refused_batch_lines_are_stored_as_rejected(server, api_key, tmp_path):
    out = tmp_path / "b"
    server.script = lambda body, attempt: "400" if "system" in json.dumps(body) and key_of(body) < "4" else None
    records = run(_batch(out, server.base_url, "max_rejected=10"))
    rejected = [s for s in read_jsonl(out / "requests" / "responses.jsonl") if s["reply"]["finish_reason"] == "rejected"]
    assert rejected and len(records) == 18 - len(rejected)
    assert rejected[0]["reply"]["error"] == "HTTP 400: The prompt was flagged."
    batches = len(server.batches)
    run(_batch(out, server.base_url, "max_rejected=10"))
    assert len(server.batches) == batches  # nothing resubmitted
