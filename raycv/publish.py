"""After the compute: a finished run or tune folder gets its report and its tracking.

Compute (experiment.py, orchestration/) writes plain results and never imports the
report. This is the one step that turns a finished folder into its report page, logs it
to the trackers the config names, and uploads a URI folder's last files.
"""

from __future__ import annotations

from raycv.report import try_build_report
from raycv.runfolder import RunFolder
from raycv.tracking import track_run


def publish(folder: RunFolder, tracking=None) -> str | None:
    """Write the report (a failure only warns), track the run if `tracking` asks, upload;
    returns where the report page is, or None if it could not be written."""
    written = try_build_report(folder.path)
    if tracking is not None:
        track_run(folder.path, tracking)
    folder.sync()
    folder.close()
    return f"{folder}/report.html" if written else None


def publish_ablation(folder: RunFolder) -> str | None:
    """The ablation folder's report. A combination's own report is one `raycv report
    combos/<name>` away; building seven of them here would cost more than some of the
    combinations did."""
    return publish(folder)
