"""Jobs as users write them: loading, layers, problems, presets, epochs from data, importers.

``loading`` reads, validates and dumps job files; ``layers`` merges preset chain, job file, CLI
options and ``--set`` with provenance; ``problems`` turns validation errors into problems that
name the key and the layer; ``checks`` holds the rules that need the disk; ``presets`` and
``epochs`` compose presets (epochs picked from the data); ``import_toml`` (sd-scripts TOML) and
``import_gui`` / ``gui_*`` (kohya_ss GUI JSON) import configs; ``prompt_lines`` reads sd-scripts'
prompt lines for both; ``remedies`` suggests out-of-memory changes; ``output_file`` writes a new
file without ever replacing one.
"""
