"""Analysis over finished runs: BPC, tables, plots and the report (reads files only).

Public API::

    from micota.analyze.bpc_stage import BpcConfig, run          # `micota analyze bpc`
    from micota.analyze.report import write_report               # `micota report`
    from micota.analyze.tables import accuracy_table, delta_table, to_markdown, to_csv, to_latex
"""
