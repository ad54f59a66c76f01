"""What the tests share and are not tests themselves: tiny models built on the spot (`tiny_models`), a preempted
job (`kill`), a local OpenAI-compatible server (`openai_server`) and Hub stand-in (`hub_server`), short training
runs (`training`), run records and run folders (`records`), task files (`task_files`), the Hub test environment
(`hub`) and the commands' own parsers (`parsers`). Imported as `support.<module>` (pytest puts tests/ on
sys.path); fixtures are in tests/conftest.py."""
