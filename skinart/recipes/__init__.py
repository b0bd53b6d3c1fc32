"""Recipes: the YAML file (`file`), its validation and expansion into tasks (`plan`), and the two executors that carry
the tasks out: in this process (`executor`) or as Ray tasks (`ray_executor`)."""
