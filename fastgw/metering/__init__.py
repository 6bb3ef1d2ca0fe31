"""Usage metering: one record per request (``record``), written by a batching writer in the worker's nursery
(``recorder``) to a SQLite table in ``data_dir`` (``store``), rolled up by ``rollup`` and ``fastgw usage``
(``report``)."""
