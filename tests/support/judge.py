"""The judge's test material, shared by tests/test_judge.py and tests/test_adversarial_judge.py: task files, the
command run in this process with the calls it reports, its outputs and cache, and a fake OpenAI-compatible judge
server whose answers a function gives (`rule_judge`: one that follows ExPerT's prompts)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from contextlib import closing, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from evaluation import judge as judge_command
from longlamp_cli import run_command

TASK = "LongLaMP_product_review_user"
INPUT = ('Generate the review text written by a reviewer who has a given an overall rating of "{}" for a product '
         'with description "A kitchen item.". The summary of the review text is "Fine".')
GOLDS = ["Great blender, it crushes ice in seconds. I use it every morning for smoothies.",
         "The strap broke after a week. Disappointed, I would not buy it again.",
         "Comfortable shoes, true to size, and the colour is exactly as pictured."]
PREDICTIONS = ["This blender is powerful and crushes ice quickly.", "",
               "The shoes fit well and look like the photo."]


def write_task(path: Path, outputs, users: bool = False, inputs=None) -> Path:
    entries = [{"id": f"ex{i}", "output": text, **({"user": f"u{i}"} if users else {}),
                **({"input": inputs[i]} if inputs else {})} for i, text in enumerate(outputs)]
    path.write_text(json.dumps({"task": TASK, "golds": entries}), encoding="utf-8")
    return path


def run(golds: Path, preds: Path, model, output_dir: Path, *extra: str, capsys=None) -> tuple[int, dict]:
    """judge.py's exit code and the calls it reports (sent to the model, answered from the cache)."""
    code = run_command(judge_command.main, ["--golds", str(golds), "--preds", str(preds), "--judge_model", str(model),
                                            "--output_dir", str(output_dir), "--max_new_tokens", "16", *extra],
                       prog="judge.py")
    calls = {}
    if capsys is not None:
        out = capsys.readouterr().out
        line = next(line for line in out.splitlines() if line.startswith("judge calls:"))
        calls = {"sent": int(line.split()[2]), "cached": int(line.split()[7])}
    return code, calls


def outputs(output_dir: Path) -> tuple[str, str]:
    return ((output_dir / "judge_scores.json").read_text(encoding="utf-8"),
            (output_dir / "judge_per_example.jsonl").read_text(encoding="utf-8"))


def scores_of(output_dir: Path) -> dict:
    return json.loads((output_dir / "judge_scores.json").read_text(encoding="utf-8"))


def cache_rows(path: Path) -> int:
    with closing(sqlite3.connect(path)) as db:
        return db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]


def aspect(title: str, description: str, *evidence: str) -> dict:
    return {"aspect": title, "description": description, "evidence": list(evidence)}


def judge_task_files(folder: Path) -> tuple[Path, Path]:
    """Gold (with users and task inputs) and prediction files of three examples, one prediction empty."""
    inputs = [INPUT.format(rating) for rating in ("5.0", "1.0", "4.0")]
    return (write_task(folder / "golds.json", GOLDS, users=True, inputs=inputs),
            write_task(folder / "preds.json", PREDICTIONS))


@contextmanager
def fake_server(respond, delay: float = 0.0):
    """An OpenAI-compatible chat endpoint on 127.0.0.1 whose answer is respond(message, temperature) (a text, or
    None for `"content": null`); yields (its API base, the list of request bodies received)."""
    received = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append(body)
            time.sleep(delay)
            text = respond(body["messages"][0]["content"], body["temperature"])
            data = json.dumps({"choices": [{"message": {"content": text}, "finish_reason": "stop"}],
                               "usage": {"completion_tokens": 1, "prompt_tokens": 1}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up on the run and hung up
                pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", received
    finally:
        server.shutdown()
        server.server_close()


def rule_judge(message: str, temperature: float, preambles: bool = True) -> str:
    """A deterministic judge that follows the expert prompts: a text's aspects are its first three words; an
    aspect matches the candidate of the same word; content verdicts say yes, style verdicts yes for an even
    hash. With `preambles`, a sixth of all questions get a preamble at temperature 0 (read at the next try); a
    text holding the word NEVER is never answered readably."""
    digest = int(hashlib.sha256(message.encode()).hexdigest(), 16)
    if "Generated response: " in message:
        text = message.split("Generated response: ")[1].rsplit("\n\nOutput: ```json", 1)[0]
        if "NEVER" in text:
            return "Sorry, I cannot do that."
        answer = json.dumps([aspect(word.lower().strip(".,"), f"the word {word}", text) for word in text.split()[:3]])
    elif "# The aspect to match" in message:
        title = message.split("# The aspect to match\n\naspect title: ")[1].split("\n")[0]
        listed = [line.removeprefix("aspect title: ") for line in message.split("# The list of aspects")[1].splitlines()
                  if line.startswith("aspect title: ")]
        answer = json.dumps({"reason": "same word" if title in listed else "none", "is_matched": title in listed,
                             "matched_aspect": title if title in listed else ""})
    elif "# Aspect\n" in message:
        answer = json.dumps({"reason": "same content", "is_matched": True})
    else:
        answer = json.dumps({"reason": "style", "is_matched": digest % 2 == 0})
    return ("Here you are: " + answer) if preambles and temperature == 0 and digest % 6 == 0 else answer


def many_examples(tmp_path: Path, count: int, never: int | None = None) -> tuple[Path, Path]:
    words = ["blender", "strap", "shoes", "kettle", "lamp", "chair", "desk", "mug", "pan", "fan", "rug", "clock"]
    golds = [f"The {words[i % 12]} works well and looks nice, number {i}." for i in range(count)]
    if never is not None:
        golds[never] = f"NEVER readable {never}."
    preds = [f"The {words[i % 12]} looks nice, item {i}." if i % 4 else f"A {words[(i + 1) % 12]} I like {i}."
             for i in range(count)]
    inputs = [INPUT.format(f"{i % 5}.0") for i in range(count)]
    return (write_task(tmp_path / "golds.json", golds, inputs=inputs), write_task(tmp_path / "preds.json", preds))


def served_flags(url: str) -> list[str]:
    return ["--backend", "openai", "--api_base", url, "--retry_backoff", "0.01", "--format_retries", "3",
            "--max_new_tokens", "64"]
