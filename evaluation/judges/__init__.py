"""Optional judges of predictions, apart from the benchmark's metrics (ROUGE-1, ROUGE-L, METEOR).

`expert`: an ExPerT-style LLM judge (aspects extracted and matched both ways, rated for content and style), its
prompts in `prompts.yaml`, the judge model set up by `judge_model` (every call cached on disk by
`generation.cache`);
`evaluation/judge.py` is its command. See docs/evaluation.md, "LLM judge (ExPerT-style)".
`style_similarity`: how much closer a prediction is to its author's own profile texts than to other users'
(a sentence encoder's cosine); `evaluation/style_similarity.py` is its command.
"""
