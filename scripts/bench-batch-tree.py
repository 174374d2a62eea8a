#!/usr/bin/env python3
"""Makes a benchmark tree: N CT slices of 512x512 16-bit (from pydicom's CT_small.dcm, new UIDs)
under OUT/Raw_Scans/<patient>/<session>/, plus OUT/mapping.csv.

usage: bench-batch-tree.py OUT [N=600]
"""
import os
import sys

import numpy as np
import pydicom
from pydicom.uid import generate_uid

out = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 600
src = pydicom.dcmread(os.path.join(os.path.dirname(pydicom.__file__), 'data', 'test_files', 'CT_small.dcm'))
rng = np.random.default_rng(1)
pixels = rng.integers(0, 4096, size=(512, 512), dtype=np.uint16)
src.Rows = 512
src.Columns = 512
src.BitsAllocated = 16
src.BitsStored = 16
src.HighBit = 15
src.PixelRepresentation = 0
src.PixelData = pixels.tobytes()
patients = 6
with open(os.path.join(out, 'mapping.csv'), 'w') as f:
    f.write('MRN,Accession,New_Patient_ID,Surgery_Date,Anchor_Date,Notes\n')
    for p in range(patients):
        f.write(f'BMRN{p:04d},BACC{p:04d},BENCH{p:03d},2023-03-10,2024-06-15,\n')
per = n // patients
i = 0
for p in range(patients):
    study = generate_uid()
    for s in range(2):
        series = generate_uid()
        d = os.path.join(out, 'Raw_Scans', f'Patient_{p}', f'2023-0{s + 1}-01_CT')
        os.makedirs(d, exist_ok=True)
        count = per // 2 if s == 0 else per - per // 2
        for k in range(count):
            i += 1
            src.PatientID = f'BMRN{p:04d}'
            src.AccessionNumber = f'BACC{p:04d}'
            src.PatientName = f'BENCH^PATIENT{p}'
            src.StudyInstanceUID = study
            src.SeriesInstanceUID = series
            src.SOPInstanceUID = generate_uid()
            src.file_meta.MediaStorageSOPInstanceUID = src.SOPInstanceUID
            src.InstanceNumber = k + 1
            src.save_as(os.path.join(d, f'IM{k + 1:05d}.dcm'), write_like_original=False)
while i < n:  # remainder
    i += 1
    src.SOPInstanceUID = generate_uid()
    src.file_meta.MediaStorageSOPInstanceUID = src.SOPInstanceUID
    src.save_as(os.path.join(out, 'Raw_Scans', 'Patient_0', '2023-01-01_CT', f'IMX{i:05d}.dcm'), write_like_original=False)
