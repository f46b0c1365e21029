"""Analysis over finished runs: BPC, tables, plots and the report (reads files only).

Public API::

    from micota.analyze.bpc_stage import BpcConfig, run          # `micota analyze bpc`, stage kind `bpc`
    from micota.analyze.report import write_report               # `micota report`
    from micota.analyze.tables import Block, accuracy_table, gain_table, delta_table, to_markdown, to_csv, to_latex
    from micota.analyze.learnability import learnability_rows, rank_agreement   # BPC ranks vs accuracy ranks
"""
