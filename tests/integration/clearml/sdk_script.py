"""Run by test_clearml_sdk in a subprocess: the ClearML SDK, unchanged, against a live Vitals API
(CLEARML_API_HOST, CLEARML_API_ACCESS_KEY, CLEARML_API_SECRET_KEY from the test). Prints the
task id on its last line."""

from __future__ import annotations

import argparse
import os
import sys

from clearml import Task

PROJECT = os.environ["SDK_PROJECT"]


def main() -> None:
    task = Task.init(project_name=PROJECT, task_name="sdk run", auto_resource_monitoring=False,
                     auto_connect_frameworks=False)
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch-size", type=int, default=32)
    parser.parse_args()
    task.connect({"lr": 0.1, "epochs": 3})
    task.connect_configuration({"layers": [64, 32]}, name="model")
    logger = task.get_logger()
    for i in range(5):
        logger.report_scalar("loss", "train", value=1.0 / (i + 1), iteration=i)
        logger.report_scalar("loss", "eval", value=2.5 - i * 0.5, iteration=i)
    logger.report_text("a text report")
    logger.report_plotly(title="curve", series="fit", iteration=3,
                         figure={"data": [{"type": "scatter", "x": [1, 2, 3], "y": [4, 5, 6]}],
                                 "layout": {"title": "curve"}})
    logger.report_table(title="scores", series="table", iteration=1,
                        table_plot=[["name", "score"], ["a", 1], ["b", 2]])
    logger.report_histogram(title="counts", series="hist", values=[3, 1, 4], iteration=2,
                            xlabels=["x", "y", "z"])
    logger.report_image(title="samples", series="first", iteration=4,
                        url="https://images.example.com/sample-4.png")
    print("console line from the script")
    print("to stderr", file=sys.stderr)
    task_id = task.id
    logger.flush()
    task.close()
    print(f"TASK_ID={task_id}")


if __name__ == "__main__":
    main()
