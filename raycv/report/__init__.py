"""Reports: tables, figures and pages built from a finished run folder, never by training."""
