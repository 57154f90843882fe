"""What runs produced: checkpoints, samples and loss per epoch, and checks of the saved files.

``collect`` reads a run directory and its output folder into a ``RunOutputs`` (``view``);
``tensorboard`` reads the loss logs; ``compare`` sets runs side by side; ``lora`` /
``lora_metadata`` read a saved network's header and metadata; ``lora_header`` verifies that
what was saved is what the job asked for.
"""
