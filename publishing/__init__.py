"""Publishing runs and data to the Hugging Face Hub: model cards, plots, uploads and the dataset export.

The one home for everything a push needs, like trl's model card plus bm25s's `hf.py`:
- `cards`: pure builders of `huggingface_hub.ModelCard` from what a run wrote on disk (`runs` reads it);
- `plots`: the results plot (PNG) a card shows;
- `hub`: the only module that uploads (huggingface_hub imported lazily; only the main process writes);
- `dataset_export`: a LongLaMP config as a standard Hub dataset folder (parquet per split, a card).
Nothing here imports the training loop: training and evaluation call in, never the other way round.
"""
