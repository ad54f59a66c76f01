"""The leaderboard of runs: finished run folders (or the Hub repositories they were pushed to) read, ranked
and written out."""
