//! One batch's records into one table, exactly once: the table is loaded (created, or given new
//! columns, when the destination allows), its snapshots are searched for the batch, its rows are
//! written as Parquet data files in the table's partition spec, and one append commits them with
//! the batch's id in the snapshot summary.
//!
//! **Why exactly once.** A batch has an id that is the same on every retry and after a crash and
//! replay (`request_id`, derived from the batch's identity). The commit writes it into the new
//! snapshot's summary (`sluice.batch-id`); before writing anything, the table's retained snapshots
//! are searched for it, so a batch committed before a `kill -9` (or whose commit answer was lost)
//! is not committed twice. Inside one commit, iceberg-rust retries optimistic-concurrency conflicts
//! (another daemon committed first) on the refreshed table; if a lost answer makes it re-apply an
//! append that did land, its duplicate-file check refuses it (the data files' names come from the
//! batch id), which is taken as "committed". Snapshot expiry is the limit: a batch is recognised
//! while its snapshot is retained (Iceberg keeps them 5 days by default; replays happen within
//! minutes).

use std::collections::HashMap;
use std::sync::Arc;

use iceberg::arrow::RecordBatchPartitionSplitter;
use iceberg::spec::{DataFile, DataFileFormat, Schema, Transform, UnboundPartitionSpec};
use iceberg::table::Table;
use iceberg::transaction::{AddColumn, ApplyTransactionAction, Transaction};
use iceberg::writer::base_writer::data_file_writer::DataFileWriterBuilder;
use iceberg::writer::file_writer::location_generator::{DefaultFileNameGenerator, DefaultLocationGenerator};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::partitioning::fanout_writer::FanoutWriter;
use iceberg::writer::partitioning::unpartitioned_writer::UnpartitionedWriter;
use iceberg::writer::partitioning::PartitioningWriter;
use iceberg::{Catalog, ErrorKind, NamespaceIdent, TableCreation, TableIdent};

use super::catalog::brief;
use super::rows::{new_columns, schema_of, Decoded, RowDecoder};

/// The snapshot-summary property naming the batch a commit holds.
pub const BATCH_PROPERTY: &str = "sluice.batch-id";

/// Why a table could not take a batch.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// The table does not exist and may not be created: its records are refused.
    #[error("table {0} does not exist (create_tables is off)")]
    Missing(String),
    /// Something a retry cannot mend for these records (a schema that cannot be made).
    #[error("{0}")]
    Refused(String),
    /// The catalog or the store failed; the batch is tried again.
    #[error("{0}")]
    Failed(String),
}

fn failed(what: &str, e: iceberg::Error) -> TableError {
    TableError::Failed(format!("{what}: {}", brief(&e)))
}

/// How one table's part of a batch ended.
pub struct Appended {
    /// Rows committed now (0 when the batch was committed before).
    pub rows: usize,
    /// Whether an earlier attempt had committed the batch already.
    pub before: bool,
    /// Records refused by the table's schema, with the reason.
    pub refused: Vec<(usize, String)>,
}

/// What the destination allows a table.
pub struct TableRules<'a> {
    pub create: bool,
    pub evolve: bool,
    pub partition_by: &'a [String],
    pub target_file_bytes: usize,
}

/// Writes `records` (index, bytes) into `ident` as the batch `batch_id`.
pub async fn append(
    catalog: &dyn Catalog,
    ident: &TableIdent,
    batch_id: &str,
    records: &[(usize, &[u8])],
    rules: &TableRules<'_>,
) -> Result<Appended, TableError> {
    let mut table = load_or_create(catalog, ident, records, rules).await?;
    if committed_before(&table, batch_id) {
        return Ok(Appended { rows: 0, before: true, refused: Vec::new() });
    }
    if rules.evolve {
        let added = new_columns(Some(table.metadata().current_schema()), records);
        if !added.is_empty() {
            table = add_columns(catalog, &table, added).await?;
        }
    }
    let schema = table.metadata().current_schema().clone();
    let Written { files, rows, refused } =
        write_rows(&table, &schema, batch_id, records, rules.target_file_bytes).await?;
    if rows.is_empty() {
        return Ok(Appended { rows: 0, before: false, refused });
    }
    let before = commit(catalog, &table, batch_id, files, rows.len()).await?;
    let rows = if before { 0 } else { rows.len() };
    Ok(Appended { rows, before, refused })
}

/// Appends `files` to `table` in one snapshot naming `batch_id`. `true` when they turn out to be in
/// the table already: iceberg-rust re-applied an append whose first commit did land (a lost answer),
/// and its duplicate-file check refused it.
async fn commit(
    catalog: &dyn Catalog,
    table: &Table,
    batch_id: &str,
    files: Vec<DataFile>,
    records: usize,
) -> Result<bool, TableError> {
    let ident = table.identifier();
    let properties = HashMap::from([
        (BATCH_PROPERTY.to_string(), batch_id.to_string()),
        ("sluice.records".to_string(), records.to_string()),
    ]);
    let tx = Transaction::new(table);
    let action = tx.fast_append().add_data_files(files).set_snapshot_properties(properties);
    let tx = action.apply(tx).map_err(|e| failed("cannot prepare the append", e))?;
    match tx.commit(catalog).await {
        Ok(_) => Ok(false),
        Err(e) if e.kind() == ErrorKind::DataInvalid && e.message().contains("already referenced") => Ok(true),
        // Retrying cannot help: the catalog cannot hold this table (iceberg-catalog-glue 0.10 has no
        // Glue type for `timestamptz` columns, for one).
        Err(e) if e.kind() == ErrorKind::FeatureUnsupported => {
            Err(TableError::Refused(format!("the catalog cannot commit to {ident}: {}", brief(&e))))
        }
        Err(e) => Err(failed(&format!("commit to {ident} failed"), e)),
    }
}

/// Whether a retained snapshot of `table` holds `batch_id`.
pub fn committed_before(table: &Table, batch_id: &str) -> bool {
    table
        .metadata()
        .snapshots()
        .any(|s| s.summary().additional_properties.get(BATCH_PROPERTY).is_some_and(|b| b == batch_id))
}

async fn load_or_create(
    catalog: &dyn Catalog,
    ident: &TableIdent,
    records: &[(usize, &[u8])],
    rules: &TableRules<'_>,
) -> Result<Table, TableError> {
    match catalog.load_table(ident).await {
        Ok(table) => return Ok(table),
        Err(e) if !is_missing(&e) => return Err(failed(&format!("cannot load {ident}"), e)),
        Err(_) if !rules.create => return Err(TableError::Missing(ident.to_string())),
        Err(_) => {}
    }
    let columns = new_columns(None, records);
    if columns.is_empty() {
        return Err(TableError::Refused(format!(
            "cannot create {ident}: its records carry no column with a value to take a type from"
        )));
    }
    let schema = schema_of(&columns).map_err(TableError::Refused)?;
    let mut spec = UnboundPartitionSpec::builder();
    for column in rules.partition_by {
        let Some(field) = schema.field_by_name(column) else {
            return Err(TableError::Refused(format!(
                "cannot create {ident} partitioned by `{column}`: its records have no such column"
            )));
        };
        spec = spec
            .add_partition_field(field.id, column, Transform::Identity)
            .map_err(|e| TableError::Refused(format!("cannot partition {ident} by `{column}`: {e}")))?;
    }
    let namespace = ident.namespace();
    if !catalog.namespace_exists(namespace).await.map_err(|e| failed("cannot look up the database", e))? {
        if let Err(e) = catalog.create_namespace(namespace, HashMap::new()).await {
            // Another daemon may have created it since.
            if !catalog.namespace_exists(namespace).await.unwrap_or(false) {
                return Err(failed(&format!("cannot create database {}", namespace_name(namespace)), e));
            }
        }
    }
    let creation =
        TableCreation::builder().name(ident.name().to_string()).schema(schema).partition_spec(spec.build()).build();
    match catalog.create_table(namespace, creation).await {
        Ok(table) => Ok(table),
        // Another daemon created it first: use theirs.
        Err(e) => catalog.load_table(ident).await.map_err(|_| failed(&format!("cannot create {ident}"), e)),
    }
}

fn namespace_name(n: &NamespaceIdent) -> String {
    n.as_ref().join(".")
}

/// Only the catalog's own "no such table/namespace" counts: any other failure (a store that cannot
/// be read, a catalog that is down) is retried, never taken as a missing table.
fn is_missing(e: &iceberg::Error) -> bool {
    matches!(e.kind(), ErrorKind::TableNotFound | ErrorKind::NamespaceNotFound)
        // iceberg-catalog-glue passes a missing database through as the SDK's error: Glue's own code.
        || format!("{e:?}").contains("EntityNotFoundException")
}

async fn add_columns(
    catalog: &dyn Catalog,
    table: &Table,
    added: Vec<(String, iceberg::spec::Type)>,
) -> Result<Table, TableError> {
    let names: Vec<String> = added.iter().map(|(n, _)| n.clone()).collect();
    let tx = Transaction::new(table);
    let mut action = tx.update_schema();
    for (name, ty) in added {
        action = action.add_column(AddColumn::optional(name, ty));
    }
    let tx = action.apply(tx).map_err(|e| failed("cannot prepare the schema update", e))?;
    match tx.commit(catalog).await {
        Ok(table) => Ok(table),
        // Another writer added the same columns first.
        Err(_) => {
            let table = catalog.load_table(table.identifier()).await.map_err(|e| failed("cannot reload", e))?;
            let schema = table.metadata().current_schema();
            if names.iter().all(|n| schema.field_by_name(n).is_some()) {
                Ok(table)
            } else {
                Err(TableError::Failed(format!("cannot add columns {names:?} to {}", table.identifier())))
            }
        }
    }
}

/// A file-name prefix from the batch id: the same on every attempt, safe in a path.
fn file_prefix(batch_id: &str) -> String {
    let safe: String =
        batch_id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    format!("sluice-{safe}")
}

/// Rows decoded and written per slice: a batch is never one Arrow `RecordBatch` in memory, only
/// a slice of it beside the Parquet writers' encoded pages.
const SLICE_ROWS: usize = 8192;

type Builder = DataFileWriterBuilder<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>;

/// A batch's data files, open: one per partition of the table's spec (or one).
enum DataFiles {
    Unpartitioned(Box<UnpartitionedWriter<Builder>>),
    Partitioned(Box<(RecordBatchPartitionSplitter, FanoutWriter<Builder>)>),
}

/// What writing a batch's rows left: its data files, and which records are in them or refused.
struct Written {
    files: Vec<DataFile>,
    rows: Vec<usize>,
    refused: Vec<(usize, String)>,
}

/// Decodes `records` a slice at a time into the table's schema and writes them as Parquet data
/// files named after the batch (the same names on every attempt).
async fn write_rows(
    table: &Table,
    schema: &Arc<Schema>,
    batch_id: &str,
    records: &[(usize, &[u8])],
    target_file_bytes: usize,
) -> Result<Written, TableError> {
    let decoder = RowDecoder::new(schema).map_err(TableError::Refused)?;
    let locations = DefaultLocationGenerator::new(table.metadata()).map_err(|e| failed("no data location", e))?;
    let names = DefaultFileNameGenerator::new(file_prefix(batch_id), None, DataFileFormat::Parquet);
    let properties = parquet_58::file::properties::WriterProperties::builder()
        .set_compression(parquet_58::basic::Compression::ZSTD(Default::default()))
        .build();
    let parquet = ParquetWriterBuilder::new(properties, schema.clone());
    let rolling = RollingFileWriterBuilder::new(parquet, target_file_bytes, table.file_io().clone(), locations, names);
    let builder = DataFileWriterBuilder::new(rolling);
    let spec = table.metadata().default_partition_spec();
    let mut files = if spec.is_unpartitioned() {
        DataFiles::Unpartitioned(Box::new(UnpartitionedWriter::new(builder)))
    } else {
        let splitter = RecordBatchPartitionSplitter::try_new_with_computed_values(schema.clone(), spec.clone())
            .map_err(|e| failed("cannot partition the rows", e))?;
        DataFiles::Partitioned(Box::new((splitter, FanoutWriter::new(builder))))
    };
    let mut written = Written { files: Vec::new(), rows: Vec::with_capacity(records.len()), refused: Vec::new() };
    for slice in records.chunks(SLICE_ROWS) {
        let Decoded { batch, written: rows, refused } = decoder.decode(slice).map_err(TableError::Refused)?;
        written.rows.extend(rows);
        written.refused.extend(refused);
        let Some(batch) = batch else { continue };
        match &mut files {
            DataFiles::Unpartitioned(w) => w.write(batch).await.map_err(|e| failed("cannot write a data file", e))?,
            DataFiles::Partitioned(p) => {
                let (splitter, w) = &mut **p;
                for (key, part) in splitter.split(&batch).map_err(|e| failed("cannot partition the rows", e))? {
                    w.write(key, part).await.map_err(|e| failed("cannot write a data file", e))?;
                }
            }
        }
    }
    written.files = match files {
        DataFiles::Unpartitioned(w) => w.close().await,
        DataFiles::Partitioned(p) => p.1.close().await,
    }
    .map_err(|e| failed("cannot finish a data file", e))?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use iceberg::memory::{MemoryCatalogBuilder, MEMORY_CATALOG_WAREHOUSE};
    use iceberg::CatalogBuilder;
    use iceberg_storage_opendal::OpenDalStorageFactory;

    async fn catalog(dir: &std::path::Path) -> impl Catalog {
        let warehouse = format!("file://{}", dir.display());
        MemoryCatalogBuilder::default()
            .with_storage_factory(Arc::new(OpenDalStorageFactory::Fs))
            .load("test", HashMap::from([(MEMORY_CATALOG_WAREHOUSE.to_string(), warehouse)]))
            .await
            .unwrap()
    }

    const RULES: TableRules<'static> =
        TableRules { create: true, evolve: false, partition_by: &[], target_file_bytes: 1 << 20 };

    fn records() -> Vec<(usize, &'static [u8])> {
        vec![(0, br#"{"id":1,"msg":"a"}"#.as_slice()), (1, br#"{"id":2,"msg":"b"}"#.as_slice())]
    }

    #[tokio::test]
    async fn a_batch_appended_again_is_found_in_the_snapshots_and_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = catalog(dir.path()).await;
        let ident = TableIdent::from_strs(["db", "events"]).unwrap();
        let first = append(&catalog, &ident, "batch-1", &records(), &RULES).await.unwrap();
        assert_eq!((first.rows, first.before), (2, false));
        let again = append(&catalog, &ident, "batch-1", &records(), &RULES).await.unwrap();
        assert_eq!((again.rows, again.before), (0, true));
        let other = append(&catalog, &ident, "batch-2", &records(), &RULES).await.unwrap();
        assert_eq!((other.rows, other.before), (2, false));
        let table = catalog.load_table(&ident).await.unwrap();
        assert_eq!(table.metadata().snapshots().len(), 2);
    }

    /// What iceberg-rust's own retry does after a commit whose answer was lost: the same append,
    /// prepared on the table as it was before, applied to the refreshed table.
    #[tokio::test]
    async fn an_append_re_applied_after_it_landed_is_refused_as_a_duplicate_and_counted_as_committed() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = catalog(dir.path()).await;
        let ident = TableIdent::from_strs(["db", "events"]).unwrap();
        append(&catalog, &ident, "batch-0", &records(), &RULES).await.unwrap();
        let stale = catalog.load_table(&ident).await.unwrap();
        let schema = stale.metadata().current_schema().clone();
        let files = write_rows(&stale, &schema, "batch-1", &records(), 1 << 20).await.unwrap().files;
        assert!(!commit(&catalog, &stale, "batch-1", files, 2).await.unwrap());
        let files = write_rows(&stale, &schema, "batch-1", &records(), 1 << 20).await.unwrap().files;
        assert!(commit(&catalog, &stale, "batch-1", files, 2).await.unwrap(), "the second commit is a duplicate");
        let table = catalog.load_table(&ident).await.unwrap();
        assert_eq!(table.metadata().snapshots().len(), 2);
    }
}
