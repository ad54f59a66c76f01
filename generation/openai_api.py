"""An OpenAI-compatible server (vLLM's `vllm serve`, TGI, SGLang, llama.cpp, a hosted API): the chat or the
completions endpoint. Only the request body and the reading of the answer are here; see `http_api.HTTPGenerator`.

Decoding is the run's: greedy is temperature 0; sampling sends temperature, top_p and the example's own seed
(servers that support `seed` repeat the draw). max_tokens is --max_new_tokens; `stop` holds the text of the
model's stop tokens when a tokenizer is known (a server stops at its model's end token anyway). Chat mode sends
the prompt as one user message, which the server wraps in its chat template; completions mode sends the prompt
text as built here (with --tokenizer's chat template when it is used).
"""

from __future__ import annotations

from generation.base import Generation
from generation.http_api import HTTPGenerator

API_MODES = ("chat", "completions")
MAX_STOP_SEQUENCES = 4  # OpenAI's limit


def stop_texts(source) -> list[str]:
    """The text of each stop token (</s>, <|im_end|>...), as far as the tokenizer knows them."""
    if not source.stop_token_ids:
        return []
    tokens = source.tokenizer.convert_ids_to_tokens(source.stop_token_ids)
    return [token for token in tokens if token][:MAX_STOP_SEQUENCES]


class OpenAIGenerator(HTTPGenerator):
    name = "openai"

    def __init__(self, source, settings, api_base: str, api_mode: str = "chat", api_key_env: str | None = None,
                 max_concurrency: int = 16, request_timeout: float = 600.0, max_retries: int = 8,
                 retry_backoff: float = 1.0):
        if api_mode not in API_MODES:
            raise ValueError(f"--api_mode must be one of {', '.join(API_MODES)}, got {api_mode!r}")
        super().__init__(source, settings, api_base, api_key_env=api_key_env, max_concurrency=max_concurrency,
                         request_timeout=request_timeout, max_retries=max_retries, retry_backoff=retry_backoff)
        self.api_mode = api_mode
        self.stop = stop_texts(source)

    @classmethod
    def unsupported(cls, source, settings) -> str | None:
        if settings.num_beams > 1:
            return "has no beam search (the OpenAI API does not take num_beams)"
        return None

    @classmethod
    def dtype_name(cls, dtype: str) -> str | None:
        return None  # the server's choice, not known here

    def path(self) -> str:
        return "/chat/completions" if self.api_mode == "chat" else "/completions"

    def payload(self, prompt: str, seed: int) -> dict:
        s = self.settings
        body = {"model": self.source.address, "max_tokens": s.max_new_tokens, "n": 1}
        if s.do_sample:
            body.update(temperature=s.temperature, top_p=s.top_p, seed=seed)
        else:
            body.update(temperature=0.0)
        if self.stop:
            body["stop"] = self.stop
        if self.api_mode == "chat":
            body["messages"] = [{"role": "user", "content": prompt}]
            if self.source.chat_template_kwargs:  # vLLM's and SGLang's extension: the server's template reads them
                body["chat_template_kwargs"] = self.source.chat_template_kwargs
        else:
            body["prompt"] = prompt
        return body

    def parse(self, body: dict) -> Generation:
        choice = body["choices"][0]
        text = (choice["message"]["content"] if self.api_mode == "chat" else choice["text"]) or ""
        for stop in self.stop:  # a server that does not apply `stop` itself
            text = text.partition(stop)[0]
        usage = body.get("usage") or {}
        finish = choice.get("finish_reason")
        tokens = usage.get("completion_tokens")
        if tokens is None:
            tokens = len(self.source.tokenizer(text, add_special_tokens=False)["input_ids"])
        return Generation(text, int(tokens), hit_limit=finish == "length", prompt_tokens=usage.get("prompt_tokens"),
                          finish_reason=finish)
