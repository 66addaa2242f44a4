-- raw_files: the Parquet files that hold raw_<extract> (the loaded rows as delivered), one per extract per
-- batch, in the warehouse's raw folder (<warehouse file name>.raw/, data_contracts.load.raw_folder); the view
-- raw_<extract> reads the files listed here. A snapshot extract lists its current delivery only.
CREATE TABLE IF NOT EXISTS raw_files (
    batch_id BIGINT,
    extract VARCHAR,
    file VARCHAR,
    rows BIGINT
)
