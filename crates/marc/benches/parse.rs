//! Parsing speed on real data: the 1 000 MARC-8 records of `jazz_1k.mrc`,
//! read alone and read then mapped to `BibRecord`s.

use std::hint::black_box;

use criterion::{Criterion, Throughput};
use lectern_marc::bib;
use lectern_marc::iso2709::Iso2709Reader;

const JAZZ: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/marc/jazz_1k.mrc"
);

fn parse(c: &mut Criterion) {
    let bytes = std::fs::read(JAZZ).expect("jazz_1k.mrc is readable");
    let records = Iso2709Reader::new(&bytes[..]).count();
    let mut group = c.benchmark_group("jazz_1k");
    group.throughput(Throughput::Elements(records as u64));

    group.bench_function("read", |b| {
        b.iter(|| Iso2709Reader::new(black_box(&bytes[..])).flatten().count());
    });
    group.bench_function("read_and_map", |b| {
        b.iter(|| {
            Iso2709Reader::new(black_box(&bytes[..]))
                .filter_map(Result::ok)
                .map(|record| bib::from_record(&record).copies.len())
                .sum::<usize>()
        });
    });

    group.finish();
}

// Written out instead of `criterion_group!`, whose generated function
// has no doc comment and would trip the workspace's `missing_docs`.
fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    parse(&mut criterion);
    criterion.final_summary();
}
