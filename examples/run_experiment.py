"""Run an experiment YAML: the same as ``raytune-opt run``, as a script for ``ray submit`` and the Jobs API.

    ray submit clusters/aws.yaml examples/run_experiment.py -- examples/quickstart.yaml --address auto
    ray job submit --working-dir . -- \
        python examples/run_experiment.py examples/quickstart.yaml --address auto
    python examples/run_experiment.py examples/quickstart.yaml --set search.num_samples=8
"""

import sys

from raytune_opt.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
