"""Paired statistics and the leaderboard of runs."""
