#!/usr/bin/env python3
"""A same-run stand-in for the workflow dicom-deid replaces (a per-file Python script on pydicom +
dicom-anonymizer), for scripts/bench-batch.sh: dicom-anonymizer is not packaged for Debian and
PyPI is out of reach here, so this does, with pydicom alone, the per-file work such a script
cannot avoid: read the file, visit every element at every depth (what an anonymizer's rule
pass does), remove private tags, shift the dates, set the patient's identifiers and UIDs, write
the file under the research folder. It does less than dicom-anonymizer (no rule tables, no UID
map), so it is a lower bound of that approach's time, and "batch is Nx faster than this" means
at least N times faster than the original.

usage: bench-batch-pydicom.py MAPPING.csv RAW_DIR OUT_DIR
"""
import csv
import datetime
import hashlib
import os
import sys

import pydicom

mapping_csv, raw, out = sys.argv[1:4]
rows = {}
with open(mapping_csv, newline='') as f:
    for r in csv.reader(f):
        if r and r[0] != 'MRN':
            rows[r[0]] = r


def new_uid(uid):
    return '2.25.' + str(int(hashlib.sha256(uid.encode()).hexdigest()[:30], 16))


def visit(ds, offset):
    def callback(dataset, elem):
        if elem.VR == 'DA' and elem.value:
            d = datetime.datetime.strptime(str(elem.value)[:8], '%Y%m%d') + offset
            elem.value = d.strftime('%Y%m%d')
        elif elem.VR == 'UI' and elem.value and not str(elem.value).startswith('1.2.840.10008'):
            elem.value = new_uid(str(elem.value))
        elif elem.VR == 'PN':
            elem.value = ''

    ds.walk(callback)


for dirpath, _, names in os.walk(raw):
    for name in sorted(names):
        src = os.path.join(dirpath, name)
        ds = pydicom.dcmread(src)
        row = rows[str(ds.PatientID)]
        surgery = datetime.datetime.strptime(row[3], '%Y-%m-%d')
        anchor = datetime.datetime.strptime(row[4] or '2024-06-15', '%Y-%m-%d')
        ds.remove_private_tags()
        visit(ds, anchor - surgery)
        ds.PatientID = row[2]
        ds.PatientName = row[2]
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        rel = os.path.relpath(src, raw).split(os.sep)
        dest = os.path.join(out, row[2], *rel[1:])
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        ds.save_as(dest)
