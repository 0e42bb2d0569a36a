"""Evaluating confidence scores.

- The paper's protocol: `protocol` (`run_protocol`, every fold x seed x training), `unit` (one of them: train,
  score, evaluate), `parts` (the output directory's finished units, for resuming), `workers` (units in worker
  processes or on a dask cluster), `run_outputs` (a run's tables, report and manifest written together).
- Statistics over runs: `statistics`.
- The report: the input tables' columns and views (`protocol_tables`, `tables`), the tables computed for it
  (`report_tables`), plots (`plots`) and markdown (`markdown`, `statistics_text`, `markdown_table`).

The scores themselves are `emoconf_tf.scores`; the selective-classification metrics, `emoconf_tf.selective`.
"""
