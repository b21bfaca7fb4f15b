"""Nothing identifying from a DICOM file is stored: DICOM files full of planted identifiers (patient,
study, institution, physicians, comments, private tags, UIDs, file meta; with and without a preamble,
alone and inside a ZIP) go through the real web server and a real worker; then every column of every
table in the database, every blob (and the text chunks of every stored PNG), every file the processes
wrote and every log line are searched for each planted value."""
from __future__ import annotations

import io
import json
import re

import httpx
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from sqlalchemy import inspect, select, text

from tests.builders import make_dicom, make_head_slice
from tests.hardening.corpus import Item, _zip
from tests.hardening.test_hostile_files import _login, upload_body
from tests.webapp.conftest import create_role_users
from tests.worker.conftest import install_model, wait_for_final

PLANTED = {
    "PatientName": "Zebedee^Planted",
    "PatientID": "PLANTPID4471",
    "IssuerOfPatientID": "PLANTISSUER",
    "OtherPatientIDs": "PLANTALT9902",
    "PatientBirthDate": "19230405",
    "PatientBirthName": "Zebedeeborn^Planted",
    "PatientMotherBirthName": "Mothzedx^Planted",
    "PatientAddress": "77 Plantation Road, Zebville",
    "PatientTelephoneNumbers": "555-7302-911",
    "PatientComments": "PLANTCOMMENT patient in bed 12",
    "InstitutionName": "Zebedee Memorial Plant Hospital",
    "InstitutionAddress": "1 Plantain Square",
    "InstitutionalDepartmentName": "PLANTDEPT",
    "ReferringPhysicianName": "Refzedx^Plantdoc",
    "PerformingPhysicianName": "Perfzedx^Plantdoc",
    "NameOfPhysiciansReadingStudy": "Readzedx^Plantdoc",
    "OperatorsName": "Opzedxx^Plantop",
    "AccessionNumber": "PLANTACC5512",
    "StudyID": "PLANTSTUDY7",
    "StudyDescription": "PLANTSTUDYDESC headache",
    "SeriesDescription": "PLANTSERIESDESC axial",
    "ImageComments": "PLANTIMGCOMMENT call 555-0199",
    "StudyInstanceUID": "1.2.826.0.1.3680043.9.7133.1.77441",
    "SeriesInstanceUID": "1.2.826.0.1.3680043.9.7133.2.88552",
    "FrameOfReferenceUID": "1.2.826.0.1.3680043.9.7133.3.99663",
    "StationName": "PLANTSTATION",
    "DeviceSerialNumber": "PLANTSERIAL0042",
    "StudyDate": "20190314",
    "StudyTime": "101112.131415",
}
SOP_INSTANCE = "1.2.826.0.1.3680043.9.7133.4.11223"
PRIVATE_VALUE = "PLANTPRIVATE vendor value"
NESTED_VALUE = "Nestzedx^Plantdoc"
META = {"ImplementationVersionName": "PLANTIMPL", "SourceApplicationEntityTitle": "PLANTAE"}


def needles() -> list[str]:
    values = [v for v in PLANTED.values()] + [SOP_INSTANCE, PRIVATE_VALUE, NESTED_VALUE, *META.values()]
    # Person names are also searched part by part, the birth date also as an ISO date.
    parts = {part for v in values for part in re.split(r"\^", v) if len(part) >= 6}
    return sorted(set(values) | parts | {"1923-04-05"})


def identified_dicom(seed: int, *, preamble: bool = True, modality: str = "CT") -> bytes:
    stored = (make_head_slice(96, seed=seed) * 80 + 1024).astype(np.int16)
    item = Dataset()
    item.ReferringPhysicianName = NESTED_VALUE
    item.ReferencedSOPInstanceUID = SOP_INSTANCE
    raw = make_dicom(stored, modality=modality, extra={**PLANTED, "ReferencedStudySequence": Sequence([item])})
    ds = pydicom.dcmread(io.BytesIO(raw))
    ds.SOPInstanceUID = SOP_INSTANCE
    ds.file_meta.MediaStorageSOPInstanceUID = SOP_INSTANCE
    for keyword, value in META.items():
        setattr(ds.file_meta, keyword, value)
    ds.private_block(0x0029, "PLANT Imaging", create=True).add_new(0x10, "LO", PRIVATE_VALUE)
    ds.private_block(0x0041, "PLANT Other", create=True).add_new(0x01, "UT", PRIVATE_VALUE + " long")
    buffer = io.BytesIO()
    if preamble:
        ds.save_as(buffer, enforce_file_format=True)
    else:
        del ds.file_meta
        pydicom.dcmwrite(buffer, ds, implicit_vr=True, little_endian=True)
    return buffer.getvalue()


def stored_values(database_url: str) -> list[tuple[str, bytes]]:
    """(table.column, value as bytes) for every value in every table the database has."""
    from core.db import get_engine

    engine = get_engine(database_url)
    values: list[tuple[str, bytes]] = []
    with engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            result = conn.execute(text(f'SELECT * FROM "{table}"'))
            columns = list(result.keys())
            for row in result:
                for column, value in zip(columns, row):
                    where = f"{table}.{column}"
                    if isinstance(value, (bytes, bytearray, memoryview)):
                        data = bytes(value)
                        values.append((where, data))
                        if data.startswith(b"\x89PNG"):
                            info = Image.open(io.BytesIO(data)).info  # tEXt/zTXt/iTXt chunks, inflated
                            values.append((where + " (PNG text)", json.dumps(info, default=str).encode()))
                    elif value is not None:
                        values.append((where, json.dumps(value, default=str).encode()
                                       if isinstance(value, (dict, list)) else str(value).encode()))
    return values


@pytest.mark.slow
def test_no_planted_identifier_survives_anywhere(make_env, start_web, start_worker, handmade_model_dir) -> None:
    env = make_env(database="postgres", broker="redis")
    create_role_users()
    install_model(env, handmade_model_dir)
    web, base = start_web(env)
    worker = start_worker(env)
    items = [Item("ct.dcm", identified_dicom(1), None),
             Item("raw-stream.dcm", identified_dicom(2, preamble=False), None),
             Item("mr.dcm", identified_dicom(3, modality="MR"), None),
             Item("series.zip",
                  _zip([("a/ct.dcm", identified_dicom(4)), ("a/mr.dcm", identified_dicom(5, modality="MR"))]), None)]
    with httpx.Client(base_url=base, timeout=60) as client:
        _login(client)
        response = client.post("/_dash-update-component", json=upload_body(client, items))
        assert response.status_code == 200, response.text[:300]
        batch_id = response.json()["response"]["screen-batch"]["data"]
    state = wait_for_final(env, batch_id, timeout=90)
    assert state["status"] == "done" and state["predicted"] == 5  # screened, from de-identified pixels

    with_identifiers = [needle for needle in needles()
                        if any(needle.encode() in data for data in
                               [b"".join(identified_dicom(1).split(b"\x00"))] + [identified_dicom(1)])]
    assert len(with_identifiers) > 20  # the planted values really are in the uploaded bytes
    found = [(needle, where) for where, data in stored_values(env.database_url) for needle in needles()
             if needle.encode() in data or needle.encode("utf-16-le") in data]
    assert found == []
    on_disk = [(needle, str(path)) for path in env.data_dir.rglob("*") if path.is_file()
               for needle in needles() if needle.encode() in path.read_bytes()]
    assert on_disk == []
    logs = web.log() + worker.log()
    assert [needle for needle in needles() if needle in logs] == []

    from core.db import session_scope
    from core.models import Scan

    with session_scope() as db:
        kept = [scan.dicom_fields for scan in db.scalars(select(Scan).where(Scan.batch_id == batch_id))]
    assert all(fields["deidentification"]["removed_count"] > 20 for fields in kept)
    assert {fields["modality"] for fields in kept} == {"CT", "MR"}
