"""LongLaMP through lm-evaluation-harness (evaluation/lm_eval_tasks/): the README's `lm_eval run` command, run for real
with lm-eval's hf backend on the bundled sample, gives per example the prompt, the generation and the scores of
`evaluate_llm.py` with the same settings, and the means of `eval_task.py`.

The tiny models carry a hostile `generation_config.json` (sampling defaults and a repetition penalty, as chat
models ship): lm-eval's hf backend would decode with it, the toolkit never does, so equal generations show that the
task's decoding settings undo it (`test_without_the_task_settings_lm_eval_decodes_otherwise` shows they must).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("lm_eval", reason="lm-eval is not installed (pip install -e \".[lm-eval]\")")

from lm_eval.api.instance import Instance  # noqa: E402
from lm_eval.tasks._factory import TaskFactory  # noqa: E402
from lm_eval.tasks._index import Kind, TaskIndex  # noqa: E402
from support.kill import same_threads  # noqa: E402

from benchmark_runner.local_models import DEFAULT_OUTPUT as SMOLLM  # noqa: E402  where set-up prepares the demo model
from evaluation import eval_task  # noqa: E402
from evaluation.lm_eval_tasks import task as harness  # noqa: E402
from evaluation.zero_shot import ZeroShotOptions, evaluate  # noqa: E402
from longlamp_runs import PER_SAMPLE_FILE  # noqa: E402
from retrieval import top_k_items  # noqa: E402
from retrieval.cli import DEFAULT_NUM_RETRIEVED  # noqa: E402
from scoring import per_sample  # noqa: E402
from scoring.metrics import DEFAULT_METRICS, score  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TASKS_DIR = REPO / "evaluation" / "lm_eval_tasks"
PUBLIC = [f"{task}_{setting}" for task in ("abstract_generation", "product_review", "topic_writing")
          for setting in ("user", "temporal")]
EMAIL = ["email_generation_user", "email_generation_temporal"]
HOSTILE = {"do_sample": True, "temperature": 0.6, "top_k": 5, "repetition_penalty": 3.0}


def hostile(model: Path) -> Path:
    """The model with a chat model's sampling defaults and a strong repetition penalty in its generation config."""
    from transformers import GenerationConfig

    config = GenerationConfig.from_pretrained(model)
    config.update(**HOSTILE)
    config.save_pretrained(model)
    return model


@pytest.fixture(scope="module")
def plain_model(tmp_path_factory) -> Path:
    from support.tiny_models import make_causal_lm

    return hostile(make_causal_lm(tmp_path_factory.mktemp("tiny-plain")))


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory) -> Path:
    from support.tiny_models import make_causal_lm

    return hostile(make_causal_lm(tmp_path_factory.mktemp("tiny-chat"), chat=True))


def readme_sample_command() -> list[str]:
    """The README's `lm_eval run` command on the bundled sample, continuation lines joined."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    commands = [shlex.split(line.split(" #", 1)[0])
                for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S)
                for line in block.replace("\\\n", " ").splitlines() if line.startswith("lm_eval run ")]
    sample = [command for command in commands if "data/sample" in " ".join(command)]
    assert len(commands) >= 2 and len(sample) == 1, commands
    return sample[0]


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def replace_option(argv: list[str], name: str, value: str) -> list[str]:
    argv = list(argv)
    argv[argv.index(name) + 1] = value
    return argv


def run_lm_eval(argv: list[str], cache: str) -> None:
    """The lm_eval console script beside this interpreter, from the repository root, offline, with this process's
    thread count (float sums split over other thread counts differ in their last bits)."""
    assert argv[:2] == ["lm_eval", "run"]
    script = Path(sys.executable).with_name("lm_eval")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "lm_eval"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_DATASETS_CACHE": cache,
           **same_threads()}
    done = subprocess.run(command + argv[1:], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]


def toolkit_run(model: Path, config: str, metadata: dict, output: Path, cache: str, chat: bool,
                limit: int | None = None) -> Path:
    """evaluate_llm.py's run with the settings the metadata gives the harness (batch size 1, as the harness runs)."""
    data_dir = metadata["avocado_dir"] if config.startswith("email") else metadata.get("data_dir")
    evaluate(ZeroShotOptions(
        validation_data=config, split=metadata.get("split", "test"), data_dir=str(REPO / data_dir), cache_dir=cache,
        model_name=str(model), output_dir=str(output), use_profile=metadata.get("use_profile", True),
        retriever=metadata.get("retriever"), num_retrieved=metadata.get("num_retrieved", DEFAULT_NUM_RETRIEVED),
        max_prompt_length=metadata.get("max_prompt_length"), max_new_tokens=metadata.get("max_new_tokens", 512),
        use_chat_template=chat, batch_size=1, max_eval_examples=limit))
    return output


def read(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def only(paths) -> Path:
    paths = list(paths)
    assert len(paths) == 1, paths
    return paths[0]


def lm_eval_files(output: Path, task_name: str) -> tuple[list[dict], dict]:
    """The samples and results a `lm_eval run --log_samples --output_path` wrote for one task."""
    samples = [json.loads(line) for line in only(output.rglob(f"samples_{task_name}_*.jsonl")).read_text().splitlines()]
    return samples, read(only(output.rglob("results_*.json")))["results"][task_name]


def run_simple_evaluate(model: Path, task_name: str, metadata: dict, chat: bool, limit: int | None = None):
    """lm-eval's Python entry point, with a task manager on this folder alone (lm-eval's own tasks are not indexed).
    A task manager passed in does not get --model_args merged into its metadata: `pretrained` goes there too."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False,
                          metadata={"pretrained": str(model), **metadata})
    output = simple_evaluate(model="hf", model_args={"pretrained": str(model), "dtype": "float32"}, tasks=[task_name],
                             device="cpu", batch_size=1, apply_chat_template=chat, limit=limit, log_samples=True,
                             task_manager=manager)
    return output["samples"][task_name], output["results"][task_name]


def assert_same_as_toolkit(samples: list[dict], results: dict, run: Path) -> None:
    """Per example: the same id, prompt text, generation and per-sample scores; per metric: the same mean, also the
    one eval_task.py computes from the run's prediction and gold files."""
    samples = sorted(samples, key=lambda sample: sample["doc_id"])
    prompts = read(run / "prompts.json")
    predictions = read(run / "predictions.json")["golds"]
    ids, _, columns = per_sample.read(run / PER_SAMPLE_FILE)
    sent = [s["arguments"]["gen_args_0"]["arg_0"] if isinstance(s["arguments"], dict) else s["arguments"][0][0]
            for s in samples]  # as written to the samples file, or as simple_evaluate returns it
    assert [s["doc"]["id"] for s in samples] == [p["id"] for p in prompts] == ids
    assert sent == [p["prompt"] for p in prompts]
    assert [s["resps"][0][0] for s in samples] == [p["output"] for p in predictions]
    for metric in DEFAULT_METRICS:
        assert [list(s[metric]) for s in samples] == [[row, value] for row, value in
                                                      enumerate(columns[metric].tolist())]
    means = {metric: results[f"{metric},none"] for metric in DEFAULT_METRICS}
    assert means == read(run / "scores.json")["scores"]["metrics"]
    assert means == eval_task.evaluate_files(run / "golds.json", run / "predictions.json", num_workers=1)["metrics"]
    assert results["sample_len"] == len(prompts)


@pytest.mark.e2e
@pytest.mark.multiprocess
@pytest.mark.slow
def test_the_readme_command_gives_the_toolkits_prompts_generations_and_scores(chat_model, tmp_path, sample_cache):
    """The README's sample command as written (all eight configs, the chat template, two examples each), with the
    tiny chat model in place of SmolLM2."""
    argv = readme_sample_command()
    model_args = option(argv, "--model_args")
    argv = replace_option(argv, "--model_args", re.sub(r"pretrained=[^,]+", f"pretrained={chat_model}", model_args))
    argv = replace_option(argv, "--output_path", str(tmp_path / "lm_eval"))
    run_lm_eval(argv, sample_cache)
    metadata = json.loads(option(argv, "--metadata"))
    limit = int(option(argv, "--limit"))
    assert "--apply_chat_template" in argv and option(argv, "--batch_size") == "1"
    assert option(argv, "--tasks").split(",") == ["longlamp", "longlamp_email"]
    for config in PUBLIC + EMAIL:
        run = toolkit_run(chat_model, config, metadata, tmp_path / config, sample_cache, chat=True, limit=limit)
        assert_same_as_toolkit(*lm_eval_files(tmp_path / "lm_eval", f"longlamp_{config}"), run)
        assert len(read(run / "prompts.json")) == limit
        prompts = read(run / "prompts.json")
        assert all(p["prompt"].startswith("<|user|>\n") for p in prompts)  # the chat template, once
        assert max(p["prompt_tokens"] for p in prompts) <= metadata["max_prompt_length"]
    # Not by accident: profile items had to be shortened to fit the budget, and generations ran to max_new_tokens.
    task = build_task("longlamp_product_review_user", {**metadata, "pretrained": str(chat_model),
                                                      "data_dir": str(REPO / "data" / "sample"),
                                                      "cache_dir": sample_cache})
    assert unshortened_tokens(task, task.eval_docs[1], chat=True) > metadata["max_prompt_length"]
    scores = read(tmp_path / "product_review_user" / "scores.json")
    assert scores["generation_lengths"]["max"] == metadata["max_new_tokens"]


@pytest.mark.slow
def test_a_base_model_without_chat_template_on_a_whole_split(plain_model, tmp_path, sample_cache):
    """A base model (no chat template), every example of a split, profile items shortened to a small budget;
    through lm-eval's Python entry point."""
    metadata = {"data_dir": str(REPO / "data" / "sample"), "split": "validation", "retriever": "bm25",
                "num_retrieved": 3, "max_prompt_length": 300, "max_new_tokens": 24, "cache_dir": sample_cache}
    samples, results = run_simple_evaluate(plain_model, "longlamp_abstract_generation_temporal", metadata, chat=False)
    run = toolkit_run(plain_model, "abstract_generation_temporal", metadata, tmp_path / "toolkit", sample_cache,
                      chat=False)
    assert_same_as_toolkit(samples, results, run)
    assert len(samples) == 5
    # Not by accident: the retrieved items had to be shortened to fit the budget.
    task = build_task("longlamp_abstract_generation_temporal", {**metadata, "pretrained": str(plain_model)})
    assert all(unshortened_tokens(task, doc, chat=False) > 300 for doc in task.eval_docs)
    assert max(p["prompt_tokens"] for p in read(run / "prompts.json")) <= 300


def test_without_the_task_settings_lm_eval_decodes_otherwise(plain_model, tmp_path, sample_cache):
    """lm-eval's hf backend itself: with the task's generate_until settings it reproduces the toolkit's generation;
    with only greedy decoding and the token limit it applies the model's repetition penalty and differs."""
    from lm_eval.models.huggingface import HFLM

    task = build_task("longlamp_product_review_user", {"pretrained": str(plain_model), "max_new_tokens": 24,
                                                       "data_dir": str(REPO / "data" / "sample"),
                                                       "split": "validation", "cache_dir": sample_cache})
    settings = task.config.generation_kwargs
    assert settings == {"until": [], "do_sample": False, "temperature": 0.0, "max_gen_toks": 24,
                        "repetition_penalty": None}
    doc = task.eval_docs[1]
    prompt = task.fewshot_context(doc, 0)
    lm = HFLM(pretrained=str(plain_model), device="cpu", dtype="float32", batch_size=1)

    def generate(kwargs):
        return lm.generate_until([Instance("generate_until", doc, (prompt, dict(kwargs)), 0)], disable_tqdm=True)[0]

    run = toolkit_run(plain_model, "product_review_user", {"data_dir": "data/sample", "split": "validation",
                                                           "max_new_tokens": 24}, tmp_path, sample_cache, chat=False)
    expected = read(run / "predictions.json")["golds"][1]["output"]
    assert generate(settings) == expected
    assert generate({"until": [], "do_sample": False, "max_gen_toks": 24}) != expected


@pytest.mark.skipif(not (SMOLLM / "config.json").is_file(),
                    reason=f"{SMOLLM} is absent (scripts/prepare_models.py prepares it)")
@pytest.mark.slow
def test_a_real_chat_model_keeps_its_blank_lines_and_scores_the_same(tmp_path, sample_cache):
    """SmolLM2-135M-Instruct: a real chat template (its system prompt, its BOS), answers that stop at its
    end-of-turn token, blank lines inside answers (lm-eval's default stop), and non-zero scores, all equal."""
    metadata = {"data_dir": str(REPO / "data" / "sample"), "split": "validation", "retriever": "bm25",
                "num_retrieved": 2, "max_prompt_length": 400, "max_new_tokens": 12, "cache_dir": sample_cache}
    # all five rows: on the sample, the model's answers to rows 3 and 4 hold a blank line within 12 tokens
    samples, results = run_simple_evaluate(SMOLLM, "longlamp_product_review_user", metadata, chat=True, limit=5)
    run = toolkit_run(SMOLLM, "product_review_user", metadata, tmp_path / "toolkit", sample_cache, chat=True, limit=5)
    assert_same_as_toolkit(samples, results, run)
    outputs = [p["output"] for p in read(run / "predictions.json")["golds"]]
    assert any("\n\n" in output for output in outputs)  # lm-eval's default `until` would have cut here
    assert results["rouge1,none"] > 0 and results["meteor,none"] > 0


# --- the task folder, built by lm-eval's own index and factory ----------------------------------------------------


def build_task(name: str, metadata: dict):
    """A task as lm-eval builds it from the folder: its index, its factory, the runtime metadata merged in."""
    index = TaskIndex.build([TASKS_DIR])
    return TaskFactory(meta=metadata).build(index[name], registry=index)


def test_one_task_per_config_and_the_groups():
    index = TaskIndex.build([TASKS_DIR])
    assert {name for name, entry in index.items() if entry.kind == Kind.PY_TASK} == {
        f"longlamp_{config}" for config in PUBLIC + EMAIL}
    assert index["longlamp"].kind == index["longlamp_email"].kind == Kind.GROUP
    assert index["longlamp"].cfg["task"] == [f"longlamp_{config}" for config in PUBLIC]
    assert index["longlamp_email"].cfg["task"] == [f"longlamp_{config}" for config in EMAIL]
    assert "aggregate_metric_list" not in index["longlamp"].cfg  # each config scored on its own


@pytest.fixture(scope="module")
def bos_model(tmp_path_factory) -> Path:
    """A chat model whose tokenizer adds BOS itself and whose chat template does not write it."""
    from support.tiny_models import make_causal_lm
    from tokenizers.processors import TemplateProcessing
    from transformers import AutoTokenizer

    model = make_causal_lm(tmp_path_factory.mktemp("tiny-bos"), chat=True)
    tokenizer = AutoTokenizer.from_pretrained(model)
    tokenizer._tokenizer.post_processor = TemplateProcessing(single="<s> $A",
                                                             special_tokens=[("<s>", tokenizer.bos_token_id)])
    tokenizer.save_pretrained(model)
    return model


@pytest.mark.parametrize("chat", [False, True])
@pytest.mark.parametrize("add_bos_token", [None, False])
def test_the_token_ids_lm_eval_sends_are_the_ones_counted(bos_model, sample_cache, chat, add_bos_token):
    """HFLM.tok_batch_encode (what lm-eval's hf backend generates from) gives the toolkit's prompt ids, or the task
    refuses before any generation and names the model argument that fixes it."""
    from lm_eval.models.huggingface import HFLM

    metadata = {"pretrained": str(bos_model), "data_dir": str(REPO / "data" / "sample"), "split": "validation",
                "cache_dir": sample_cache, "max_prompt_length": 200,
                **({"add_bos_token": add_bos_token} if add_bos_token is not None else {})}
    task = build_task("longlamp_topic_writing_user", metadata)
    lm = HFLM(pretrained=str(bos_model), device="cpu", dtype="float32", add_bos_token=add_bos_token)
    template = lm.apply_chat_template if chat else None
    for doc in task.eval_docs:
        message = task.setup.message(doc, chat)
        prompt = task.setup.builder(chat).format(message)
        sent = lm.tok_batch_encode([prompt])[0][0].tolist()
        counted = task.setup.source.encode(prompt, chat)
        assert len(counted) <= 200
        if sent == counted:
            assert task.fewshot_context(doc, 0, apply_chat_template=chat, chat_template=template) == prompt
        else:
            with pytest.raises(ValueError, match=f"add_bos_token={add_bos_token is not None}"):
                task.fewshot_context(doc, 0, apply_chat_template=chat, chat_template=template)
    # The tokenizer adds BOS: plain prompts need lm-eval's default, chat prompts add_bos_token=False.
    assert (sent == counted) == (chat == (add_bos_token is False))


def test_scores_are_the_scorers_averaged_in_dataset_order(plain_model, sample_cache):
    """The task's process_results and aggregation on real texts (another example's text as the prediction, with a
    reasoning block the toolkit strips), the items in the order two processes' results are gathered."""
    task = build_task("longlamp_topic_writing_user", {"pretrained": str(plain_model), "split": "validation",
                                                     "data_dir": str(REPO / "data" / "sample"),
                                                     "cache_dir": sample_cache})
    docs = list(task.eval_docs)
    references = [doc["output"] for doc in docs]
    predictions = references[1:] + references[:1]
    items = {metric: [] for metric in DEFAULT_METRICS}
    for doc, prediction in zip(docs, predictions):
        for metric, item in task.process_results(doc, [f"<think>plan</think>\n{prediction}"]).items():
            items[metric].append(item)
    expected = score(predictions, references)["metrics"]
    aggregations = task.aggregation()
    for metric in DEFAULT_METRICS:
        gathered = items[metric][0::2] + items[metric][1::2]
        assert aggregations[metric](gathered) == expected[metric] > 0


def unshortened_tokens(task, doc, chat: bool) -> int:
    """The prompt's length with its retrieved items whole (the toolkit's retrieval and template, no budget)."""
    setup = task.setup
    row = setup.rows[doc["row"]]
    items = top_k_items(setup.task, row, setup.num_retrieved, setup.retriever)
    builder = setup.builder(chat)
    return builder.count(builder.format(setup.task.build_prompt(items, row["input"])))


# --- what would make the numbers differ is refused ------------------------------------------------------------


@pytest.mark.parametrize("metadata, message", [
    ({"num_retreived": 2}, "unknown --metadata key 'num_retreived'; did you mean 'num_retrieved'"),
    ({"max_prompt_tokens": 500}, 'the key is "max_prompt_length"'),
    ({"do_sample": True}, "decodes greedily"),
    ({"use_profile": "false"}, "'use_profile' must be bool, got 'false'"),
    ({"validation_data": "x.jsonl"}, "local data goes in data_dir"),
    ({"use_profile": False, "retriever": "bm25"}, '"use_profile" is false'),
    ({"max_length": 600}, "lm-eval's max_length=600 leaves less than the prompt budget 1024 \\+ max_new_tokens 512"),
    ({"num_retrieved": -1}, "num_retrieved must be at least 1"),
])
def test_settings_that_would_change_the_numbers_are_refused(plain_model, metadata, message):
    with pytest.raises(ValueError, match=message):
        build_task("longlamp_product_review_user", {"pretrained": str(plain_model), **metadata})


def test_the_email_configs_need_the_avocado_data(plain_model, sample_cache):
    with pytest.raises(ValueError, match="needs the licensed Avocado data"):
        build_task("longlamp_email_generation_user", {"pretrained": str(plain_model)})
    task = build_task("longlamp_email_generation_temporal", {
        "pretrained": str(plain_model), "avocado_dir": str(REPO / "data" / "sample" / "avocado"),
        "split": "validation", "cache_dir": sample_cache})
    assert task.fewshot_context(task.eval_docs[1], 0).endswith(task.eval_docs[1]["input"])


def test_a_split_without_reference_outputs_is_refused(plain_model, tmp_path, sample_cache):
    import pyarrow.parquet as pq

    source = REPO / "data" / "sample" / "product_review_user"
    copy = tmp_path / "product_review_user"
    copy.mkdir()
    for path in source.glob("*.parquet"):
        table = pq.read_table(path)
        if path.name.startswith("test-"):
            table = table.set_column(table.column_names.index("output"), "output",
                                     [[None] * table.num_rows])
        pq.write_table(table, copy / path.name)
    with pytest.raises(ValueError, match="5 of 5 examples of split 'test' have no reference output"):
        build_task("longlamp_product_review_user", {"pretrained": str(plain_model), "data_dir": str(tmp_path),
                                                    "cache_dir": sample_cache})


def test_lm_eval_options_that_change_prompts_or_decoding_are_refused(plain_model, sample_cache, caplog):
    task = build_task("longlamp_product_review_user", {"pretrained": str(plain_model), "split": "validation",
                                                       "data_dir": str(REPO / "data" / "sample"),
                                                       "cache_dir": sample_cache, "max_new_tokens": 32})
    doc = task.eval_docs[1]
    with pytest.raises(ValueError, match="is zero-shot"):
        task.fewshot_context(doc, 2)
    with pytest.raises(ValueError, match="--system_instruction would change"):
        task.fewshot_context(doc, 0, system_instruction="Be brief.")
    with pytest.raises(ValueError, match="has no chat template"):
        task.fewshot_context(doc, 0, apply_chat_template=True, chat_template=lambda *a, **k: "")
    with caplog.at_level("WARNING"):
        task.build_all_requests(cache_requests=True, limit=1)
    assert "--cache_requests is ignored" in caplog.text
    assert task.instances[0].args == (task.fewshot_context(task.eval_docs[0], 0), task.setup.generation_kwargs)
    task.set_config(key="generation_kwargs", value={"max_gen_toks": 8}, update=True)  # what --gen_kwargs does
    with pytest.raises(ValueError, match="--gen_kwargs changed the decoding settings"):
        task.build_all_requests(limit=1)


def test_a_chat_rendering_that_differs_from_the_toolkits_is_refused(chat_model, sample_cache):
    task = build_task("longlamp_topic_writing_user", {"pretrained": str(chat_model), "split": "validation",
                                                     "data_dir": str(REPO / "data" / "sample"),
                                                     "cache_dir": sample_cache})
    doc = task.eval_docs[0]
    with pytest.raises(ValueError, match="renders the chat template differently"):
        task.fewshot_context(doc, 0, apply_chat_template=True,
                             chat_template=lambda messages, add_generation_prompt: "<|system|>\n" + str(messages))


def test_models_whose_generations_lm_eval_cannot_match_are_refused(tmp_path, plain_model):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import GenerationConfig, PreTrainedTokenizerFast

    with pytest.raises(ValueError, match="bounds an encoder-decoder model's output"):
        harness.check_lm_eval_can_match(SimpleNamespace(is_encoder_decoder=True), "t")
    vocab = {word: index for index, word in enumerate(["[UNK]", "well", ",", "it", "'", "s", "done", ".", "is", "?"])}
    core = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    core.pre_tokenizer, core.decoder = pre_tokenizers.BertPreTokenizer(), decoders.WordPiece()
    wordpiece = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]", clean_up_tokenization_spaces=True)
    source = SimpleNamespace(is_encoder_decoder=False, tokenizer=wordpiece, stop_token_ids=[0], decode=lambda ids:
                             wordpiece.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False))
    with pytest.raises(ValueError, match="clean_up_tokenization_spaces=True removes spaces before punctuation"):
        harness.check_lm_eval_can_match(source, "t")
    source.stop_token_ids = [0, vocab["."]]
    with pytest.raises(ValueError, match=r"the stop token ids \[7\] are not special tokens"):
        harness.check_lm_eval_can_match(source, "t")
    config = GenerationConfig.from_pretrained(plain_model)
    config.max_new_tokens = 100
    config.save_pretrained(tmp_path)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"):
        (tmp_path / name).write_bytes((plain_model / name).read_bytes())
    with pytest.raises(ValueError, match="sets max_new_tokens=100"):
        build_task("longlamp_product_review_user", {"pretrained": str(tmp_path)})


def test_a_chat_templates_own_end_of_turn_token_stops_lm_eval_too(tmp_path, sample_cache):
    """A template that ends a turn with a special token which is not the model's EOS (as Llama-3's <|eot_id|> is
    for some checkpoints): the toolkit stops there, lm-eval's hf backend only when the task gives it the id."""
    import torch
    from lm_eval.models.huggingface import HFLM
    from support.tiny_models import make_causal_lm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = make_causal_lm(tmp_path / "model", chat=True)
    tokenizer = AutoTokenizer.from_pretrained(model)
    tokenizer.chat_template = ("{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}"
                               "<unk>\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}")
    tokenizer.save_pretrained(model)
    metadata = {"pretrained": str(model), "split": "validation", "data_dir": str(REPO / "data" / "sample"),
                "cache_dir": sample_cache, "max_new_tokens": 24}
    task = build_task("longlamp_product_review_user", metadata)
    assert task.setup.generation_kwargs["eos_token_id"] == [tokenizer.eos_token_id, tokenizer.unk_token_id]
    # Make the model say <unk> where it said its fourth token: twice that token's output weights.
    doc = task.eval_docs[1]
    prompt = task.fewshot_context(doc, 0, apply_chat_template=True)
    weights = AutoModelForCausalLM.from_pretrained(model)
    ids = torch.tensor([task.setup.source.encode(prompt, True)])
    fourth = weights.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=4, do_sample=False,
                              eos_token_id=None, pad_token_id=0)[0, -1]
    with torch.no_grad():
        weights.lm_head.weight[tokenizer.unk_token_id] = 2 * weights.lm_head.weight[fourth]
    weights.save_pretrained(model)

    run = toolkit_run(model, "product_review_user", metadata, tmp_path / "toolkit", sample_cache, chat=True, limit=2)
    expected = read(run / "predictions.json")["golds"][1]["output"]
    assert read(run / "scores.json")["finish_reasons"].get("stop")  # the toolkit stopped at <unk>
    lm = HFLM(pretrained=str(model), device="cpu", dtype="float32", batch_size=1)

    def generate(kwargs):
        return lm.generate_until([Instance("generate_until", doc, (prompt, dict(kwargs)), 0)], disable_tqdm=True)[0]

    assert generate(task.setup.generation_kwargs) == expected
    without = {key: value for key, value in task.setup.generation_kwargs.items() if key != "eos_token_id"}
    assert generate(without) != expected and generate(without).startswith(expected)
