"""experiments/jobs.py: dependencies respected, output to per-job logs, failures named."""

import math
import operator

import pytest

from experiments.jobs import Job, JobError, run_jobs


@pytest.mark.parametrize("workers", [1, 2])
def test_results_and_dependencies(tmp_path, workers):
    jobs = [Job("a", operator.add, (1, 2)), Job("b", math.factorial, (5,)),
            Job("c", print, ("hello from c",), after=("a", "b"))]
    done = run_jobs(jobs, workers=workers, log_dir=str(tmp_path))
    assert done["a"] == 3 and done["b"] == 120 and done["c"] is None
    assert all(done[f"{name}/seconds"] >= 0 for name in "abc")
    if workers > 1:
        assert (tmp_path / "c.log").read_text().strip() == "hello from c"


def test_a_failing_job_is_named_with_its_log(tmp_path):
    jobs = [Job("fine", operator.add, (1, 1)), Job("broken", math.sqrt, (-1.0,)),
            Job("later", operator.add, (2, 2), after=("broken",))]
    with pytest.raises(JobError, match=r"job 'broken' failed: ValueError.*broken\.log"):
        run_jobs(jobs, workers=2, log_dir=str(tmp_path))


def test_bad_graphs_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown jobs"):
        run_jobs([Job("a", operator.add, (1, 1), after=("x",))], workers=2, log_dir=str(tmp_path))
    with pytest.raises(ValueError, match="listed before"):
        run_jobs([Job("a", operator.add, (1, 1), after=("b",)), Job("b", abs, (1,))],
                 workers=2, log_dir=str(tmp_path))
    with pytest.raises(ValueError, match="repeat"):
        run_jobs([Job("a", abs, (1,)), Job("a", abs, (2,))], workers=1, log_dir=str(tmp_path))
