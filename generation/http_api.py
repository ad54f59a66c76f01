"""What every backend that calls a model server shares: requests in flight, retries, timeouts, usage.

A subclass says only where to send a prompt (`path`), what to send (`payload`) and how to read the answer
(`parse`), as lm-eval's HTTP backends do. The rest is here, on httpx's async client: at most `max_concurrency`
requests in flight; a 429, a 5xx, a timeout or a dropped connection is retried up to `max_retries` times with
exponential backoff and jitter (or after the server's `Retry-After`); any other error status fails at once.
`completed` hands back each answer as it arrives, so the pipeline saves it before the next one. The API key is
read from the environment variable named, sent in the Authorization header and never written or logged: error
messages have it masked.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import random
import time
from abc import abstractmethod
from typing import Iterator, Sequence

from generation.base import Generation, Generator
from longlamp_errors import ModelLoadError

logger = logging.getLogger(__name__)
logging.getLogger("httpx").setLevel(logging.WARNING)  # httpx logs every request at INFO
RETRIED_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
MAX_BACKOFF = 60.0  # seconds: the longest wait between two tries, whatever the attempt number
MAX_RETRY_AFTER = 600.0  # seconds: a longer Retry-After is taken as this


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """A Retry-After header (seconds, or an HTTP date) as seconds from now, or None when absent or unreadable."""
    if not value:
        return None
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return min(max(when - (time.time() if now is None else now), 0.0), MAX_RETRY_AFTER)


def backoff_seconds(attempt: int, base: float, retry_after: float | None, rng: random.Random) -> float:
    """The wait before try `attempt + 1`: the server's Retry-After when it gave one, else an exponential delay
    (base * 2**attempt, at most MAX_BACKOFF) of which the second half is random, so clients do not retry in step."""
    if retry_after is not None:
        return retry_after
    delay = min(base * 2 ** attempt, MAX_BACKOFF)
    return delay / 2 + rng.uniform(0, delay / 2)


def public_url(url: str) -> str:
    """A URL as it may be shown or recorded: without any user name, password or query in it."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"


def read_api_key(variable: str | None) -> str | None:
    """The key from `variable` (OPENAI_API_KEY when not named); a variable named but unset is an error."""
    if variable is None:
        return os.environ.get("OPENAI_API_KEY") or None
    if not os.environ.get(variable):
        raise ValueError(f"--api_key_env {variable}: the environment variable {variable} is not set")
    return os.environ[variable]


def check_request_settings(api_base: str | None = None, max_concurrency: int | None = None,
                           request_timeout: float | None = None, max_retries: int | None = None,
                           retry_backoff: float | None = None) -> None:
    """ValueError naming the flag of a setting that cannot work (those given; None is not checked)."""
    if api_base is not None and not api_base.startswith(("http://", "https://")):
        raise ValueError(f"--api_base must be an http:// or https:// URL, got {api_base!r}")
    for name, value, least in (("max_concurrency", max_concurrency, 1), ("request_timeout", request_timeout, 0.001),
                               ("max_retries", max_retries, 0), ("retry_backoff", retry_backoff, 0)):
        if value is not None and value < least:
            raise ValueError(f"--{name} must be at least {least}, got {value}")


class HTTPGenerator(Generator):
    """A model behind an HTTP server. Subclasses implement `path`, `payload` and `parse`."""

    prompt_form = "text"
    independent_requests = True
    served = True
    default_batch_size = 1024  # prompts planned per call; each answer is saved as it arrives

    def __init__(self, source, settings, api_base: str, api_key_env: str | None = None, max_concurrency: int = 16,
                 request_timeout: float = 600.0, max_retries: int = 8, retry_backoff: float = 1.0):
        super().__init__(source, settings)
        check_request_settings(api_base=api_base, max_concurrency=max_concurrency, request_timeout=request_timeout,
                               max_retries=max_retries, retry_backoff=retry_backoff)
        self.api_base = api_base.rstrip("/")
        self.max_concurrency, self.request_timeout = max_concurrency, request_timeout
        self.max_retries, self.retry_backoff = max_retries, retry_backoff
        self._key = read_api_key(api_key_env)
        self._rng = random.Random(settings.seed)

    @property
    def url(self) -> str:
        return self.api_base + self.path()

    @abstractmethod
    def path(self) -> str:
        """The endpoint's path under --api_base."""

    @abstractmethod
    def payload(self, prompt: str, seed: int) -> dict:
        """The JSON body of one request."""

    @abstractmethod
    def parse(self, body: dict) -> Generation:
        """One answer's continuation (ValueError or KeyError when the body is not what the endpoint returns)."""

    def generations(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[Generation]:
        found = dict(pair for finished in self.completed(prompts, seeds) for pair in finished)
        return [found[i] for i in range(len(prompts))]

    def completed(self, prompts: Sequence[str], seeds: Sequence[int]) -> Iterator[list[tuple[int, Generation]]]:
        """Send every prompt, at most max_concurrency at a time; yield the answers as they come in."""
        import httpx

        loop = asyncio.new_event_loop()
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        client = httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(self.request_timeout),
                                   limits=httpx.Limits(max_connections=self.max_concurrency))
        semaphore = asyncio.Semaphore(self.max_concurrency)
        tasks = {loop.create_task(self._request(client, semaphore, prompt, seed)): index
                 for index, (prompt, seed) in enumerate(zip(prompts, seeds))}
        pending = set(tasks)
        try:
            while pending:
                done, pending = loop.run_until_complete(asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED))
                yield sorted((tasks[task], task.result()) for task in done)
        finally:
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(client.aclose())
            loop.close()

    async def _request(self, client, semaphore: asyncio.Semaphore, prompt: str, seed: int) -> Generation:
        """One prompt's answer, retried on what a busy or restarting server answers."""
        import httpx

        body, last = self.payload(prompt, seed), None
        for attempt in range(self.max_retries + 1):
            retry_after = None
            async with semaphore:
                try:
                    response = await asyncio.wait_for(client.post(self.url, json=body), self.request_timeout)
                except (asyncio.TimeoutError, httpx.TimeoutException):
                    last = f"no answer within --request_timeout {self.request_timeout:g} s"
                except httpx.TransportError as error:
                    last = f"the connection failed ({type(error).__name__}: {error})"
                else:
                    if response.status_code == 200:
                        return self._parsed(response)
                    last = f"HTTP {response.status_code}: {response.text[:300]}"
                    if response.status_code not in RETRIED_STATUSES:
                        raise ModelLoadError(self._masked(f"{public_url(self.url)} refused the request ({last})"))
                    retry_after = retry_after_seconds(response.headers.get("retry-after"))
            if attempt < self.max_retries:
                logger.debug("retrying %s (%s)", public_url(self.url), last)
                await asyncio.sleep(backoff_seconds(attempt, self.retry_backoff, retry_after, self._rng))
        raise ModelLoadError(self._masked(f"{public_url(self.url)} failed {self.max_retries + 1} times "
                                          f"(--max_retries {self.max_retries}); the last: {last}"))

    def _parsed(self, response) -> Generation:
        try:
            return self.parse(response.json())
        except (ValueError, KeyError, IndexError, TypeError) as error:
            raise ModelLoadError(self._masked(f"{public_url(self.url)} answered something that is not a "
                                              f"{self.path()} response ({error!r}): {response.text[:300]}")) from None

    def _masked(self, message: str) -> str:
        return message.replace(self._key, "***") if self._key else message
