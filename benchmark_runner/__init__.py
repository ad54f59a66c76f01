"""The experiment runner behind `scripts/run_benchmark.py`: an experiment file becomes a grid of real stage
commands (ranking, fine-tuning, per-user training, generation, scoring) run one after another into one resumable
folder, then a results table, plots, run cards and an optional push to the Hub.

- `experiment`: the experiment file (YAML), its command-line overrides and the grid of runs it describes;
- `stages`: each stage as the command a user would type, skipped when its outputs are complete;
- `results`: the table (95% intervals, paired differences against no profile), plots and cards.
"""
