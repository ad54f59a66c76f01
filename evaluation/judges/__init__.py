"""Optional judges of predictions, apart from the benchmark's metrics (ROUGE-1, ROUGE-L, METEOR).

`expert`: the LLM judge's default protocol, ExPerT's (aspects with evidence extracted given the user's prompt,
matched both ways, content and style verdicts, five precision/recall/F1 variants); `graded` the earlier one; what
they share (prompts file, retry schedule) in `protocol`, their strict answer readers in `expert_parsing`, the task
inputs in `task_inputs`, their prompts in `prompts.yaml`, every readable call cached on disk by
`generation.cache`, the judge model set up by `judge_model`; `evaluation/judge.py` is the command. See
docs/evaluation.md, "LLM judge (ExPerT)".
`style_similarity`: how much closer a prediction is to its author's own profile texts than to other users'
(a sentence encoder's cosine); `evaluation/style_similarity.py` is its command.
"""
