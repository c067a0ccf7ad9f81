"""The prepare step of the pipeline: a cleaned log and its RFM tables as Parquet files.

``clv prepare --out DIR`` writes, each atomically:

- ``transactions.parquet``: the cleaned log (one row per customer and purchase day; the input of
  ``clv train`` / ``clv evaluate`` / ``clv score`` in ``dvc.yaml``);
- ``rfm.parquet``: RFM over the whole log (observation end = ``train.as_of`` or the last day);
- ``calibration_holdout.parquet``: calibration RFM and holdout outcomes of the configured split;
- ``cleaning_report.json``: the cleaning report and the data fingerprint.

With ``data.engine: spark`` the log is cleaned on Spark and both RFM tables are built there with
the same SQL (:mod:`clv.data.spark_log`): only one row per customer comes back for them; the
cleaned log itself is collected for ``transactions.parquet``, and the fingerprint is hashed on
the executors.
"""

from __future__ import annotations

from pathlib import Path

from clv.config import Config
from clv.data.clean import load_configured_log
from clv.evaluation import choose_split, observation_end
from clv.features import build_calibration_holdout, build_rfm
from clv.tables import write_json, write_table

#: The files :func:`prepare` writes into its folder, by the key of the paths it returns.
PREPARE_FILES = {
    "transactions": "transactions.parquet",
    "rfm": "rfm.parquet",
    "calibration_holdout": "calibration_holdout.parquet",
    "report": "cleaning_report.json",
}


def prepare(config: Config, out: str | Path) -> dict[str, Path]:
    """Clean the configured log and write it with its RFM tables to ``out``; return the paths."""
    out = Path(out)
    log = load_configured_log(config)
    unit = config.features.time_unit
    end = observation_end(log, config)
    split = choose_split(log, config)
    rfm = build_rfm(log.compact, end, unit)
    holdout = build_calibration_holdout(
        log.compact, split.calibration_end, split.observation_end, unit
    )
    files = {k: out / name for k, name in PREPARE_FILES.items()}
    return {
        "transactions": write_table(log.frame, files["transactions"]),
        "rfm": write_table(rfm, files["rfm"]),
        "calibration_holdout": write_table(holdout, files["calibration_holdout"]),
        "report": write_json(
            {"cleaning": log.report.to_dict(), "fingerprint": log.fingerprint()},
            files["report"],
        ),
    }
