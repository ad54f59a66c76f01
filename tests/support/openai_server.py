"""A local OpenAI-compatible server for tests and benchmarks: a model on disk, real generation, both endpoints.

    python tests/support/openai_server.py --model DIR [--fail_rate 0.3] [--hang] [--log FILE]

It prints `port N` once listening on 127.0.0.1. /v1/chat/completions applies the tokenizer's chat template to
the messages and tokenizes without special tokens (as `PromptBuilder` counts a chat prompt); /v1/completions
tokenizes the prompt text with them (as a plain prompt is counted), so the same prompts reach the model as the
transformers backend's. Generation is `TransformersGenerator`'s, in float32: requests that arrive together are
decoded as one padded batch, as vLLM batches them (greedy output does not depend on the batch, see
tests/test_generation.py); sampled requests run one by one with their own seed. With LONGLAMP_TEST_SERVER_KEY
set, a request without that bearer key is refused (401). `--fail_rate` answers that share of requests with 429
(Retry-After: 0), 500 or a dropped connection, at random; `--hang` never answers. `--log` gets one line per
answered request: the sha256 of its prompt.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import queue
import random
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO)]

from generation.decoding import GenerationSettings  # noqa: E402
from generation.hf_transformers import TransformersGenerator  # noqa: E402
from generation.source import resolve_model  # noqa: E402


class BatchingModel:
    """One worker thread decodes what is queued, greedy requests of equal settings together (up to max_batch)."""

    def __init__(self, model: str, max_batch: int = 16):
        self.source = resolve_model(model)
        self.generators: dict[GenerationSettings, TransformersGenerator] = {}
        self.queue: queue.Queue = queue.Queue()
        self.max_batch = max_batch
        threading.Thread(target=self._work, daemon=True).start()

    def generate(self, ids: list[int], settings: GenerationSettings, seed: int):
        done: Future = Future()
        self.queue.put((ids, settings, seed, done))
        return done.result()

    def _generator(self, settings: GenerationSettings) -> TransformersGenerator:
        if settings not in self.generators:
            self.generators[settings] = TransformersGenerator(self.source, settings, dtype="float32")
        return self.generators[settings]

    def _work(self):
        while True:
            waiting = [self.queue.get()]
            time.sleep(0.002)  # let requests sent together arrive together
            while len(waiting) < self.max_batch:
                try:
                    waiting.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            groups: dict = {}
            for request in waiting:
                settings = request[1]
                groups.setdefault(settings if not settings.do_sample else id(request), []).append(request)
            for group in groups.values():
                try:
                    outputs = self._generator(group[0][1]).generations([r[0] for r in group], [r[2] for r in group])
                except Exception as error:  # noqa: BLE001 - handed to the waiting request, which answers 500
                    for request in group:
                        request[3].set_exception(error)
                    continue
                for request, output in zip(group, outputs):
                    request[3].set_result(output)


def handler_class(model: BatchingModel, fail_rate: float, hang: bool, log: Path | None, seed: int):
    rng, lock, key = random.Random(seed), threading.Lock(), os.environ.get("LONGLAMP_TEST_SERVER_KEY")
    tokenizer = model.source.tokenizer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _answer(self, status: int, body: dict, headers: dict | None = None):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            if key and self.headers.get("Authorization") != f"Bearer {key}":
                return self._answer(401, {"error": {"message": "Incorrect API key provided"}})
            if hang:
                time.sleep(3600)
            with lock:
                fault = rng.choice(("429", "500", "drop")) if rng.random() < fail_rate else None
            if fault == "429":
                return self._answer(429, {"error": {"message": "rate limited"}}, {"Retry-After": "0"})
            if fault == "500":
                return self._answer(500, {"error": {"message": "internal error"}})
            if fault == "drop":
                self.close_connection = True
                return None
            chat = self.path == "/v1/chat/completions"
            if chat:
                if not tokenizer.chat_template:  # as vLLM answers
                    return self._answer(400, {"error": {"message": "the tokenizer has no chat template"}})
                text = tokenizer.apply_chat_template(body["messages"], tokenize=False, add_generation_prompt=True,
                                                     **body.get("chat_template_kwargs", {}))
                ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            elif self.path == "/v1/completions":
                text = body["prompt"]
                ids = tokenizer(text, add_special_tokens=True)["input_ids"]
            else:
                return self._answer(404, {"error": {"message": f"no route {self.path}"}})
            temperature = body.get("temperature", 1.0)
            settings = GenerationSettings(max_new_tokens=body["max_tokens"], do_sample=temperature > 0,
                                          temperature=temperature or 1.0, top_p=body.get("top_p", 1.0))
            output = model.generate(ids, settings, body.get("seed", 0))
            answer = output.text
            for stop in body.get("stop", []):
                answer = answer.partition(stop)[0]
            if log is not None:
                with lock, open(log, "a", encoding="utf-8") as handle:
                    handle.write(hashlib.sha256(text.encode()).hexdigest() + "\n")
            finish = "length" if output.hit_limit else "stop"
            choice = {"index": 0, "finish_reason": finish,
                      **({"message": {"role": "assistant", "content": answer}} if chat else {"text": answer})}
            self._answer(200, {"object": "chat.completion" if chat else "text_completion", "model": body["model"],
                               "choices": [choice], "usage": {"prompt_tokens": len(ids),
                                                              "completion_tokens": output.tokens,
                                                              "total_tokens": len(ids) + output.tokens}})

    return Handler


@contextmanager
def served(model: str | Path, *flags: str, key: str | None = None):
    """Run the server in a process of its own; yields its API base (http://127.0.0.1:PORT/v1)."""
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    environment.pop("LONGLAMP_TEST_SERVER_KEY", None)
    if key is not None:
        environment["LONGLAMP_TEST_SERVER_KEY"] = key
    process = subprocess.Popen([sys.executable, __file__, "--model", str(model), *flags], stdout=subprocess.PIPE,
                               env=environment, text=True)
    try:
        line = process.stdout.readline()
        if not line.startswith("port "):
            raise RuntimeError(f"the test server did not start (exit {process.wait()})")
        yield f"http://127.0.0.1:{int(line.split()[1])}/v1"
    finally:
        process.kill()
        process.wait()
        process.stdout.close()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--fail_rate", type=float, default=0.0)
    parser.add_argument("--hang", action="store_true")
    parser.add_argument("--log", type=Path)
    parser.add_argument("--max_batch", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    model = BatchingModel(args.model, args.max_batch)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_class(model, args.fail_rate, args.hang, args.log,
                                                                 args.seed))
    server.daemon_threads = True
    print(f"port {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
