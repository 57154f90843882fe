"""Run inside the kohya venv, cwd = sd-scripts: let sd-scripts itself read prompt files.

Usage: python _sd_prompt_oracle.py PROMPTS.txt [PROMPTS.txt ...]
Prints one JSON line: for each file (in the order given), the list of prompt dicts sd-scripts'
own ``library.train_util.load_prompts`` returns for it (the reader sample_images uses for .txt
files). This file is ours; it only calls sd-scripts' public functions.
"""

import json
import sys

from library import train_util  # sd-scripts' own package (PYTHONPATH = the checkout)

result = [train_util.load_prompts(path) for path in sys.argv[1:]]
print("ORACLE " + json.dumps(result))
