"""The admin's workitem form: Django widgets, but validated by ``worklist.validation`` like every other
entry point, so that a scheduler cannot store what the API would refuse."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms

from dicomsvc.dicom.vr import format_da, format_tm
from worklist.fields import FIELDS
from worklist.models import WorkItem
from worklist.validation import WorkitemInvalid, validate_workitem

_BY_COLUMN = {f.column: f for f in FIELDS}
EDITABLE_COLUMNS = [f.column for f in FIELDS if f.column != "study_instance_uid"]


def _to_dicom(value):
    if isinstance(value, dt.date):
        return format_da(value)
    if isinstance(value, dt.time):
        return format_tm(value)
    return value


class WorkItemAdminForm(forms.ModelForm):
    study_instance_uid = forms.CharField(
        label="Study Instance UID",
        required=False,
        max_length=64,
        help_text="Leave empty to generate one under DICOM_UID_ROOT.",
    )

    class Meta:
        model = WorkItem
        fields = ["study_instance_uid", *EDITABLE_COLUMNS]
        widgets = {
            "scheduled_date": forms.DateInput(attrs={"type": "date"}),
            "scheduled_time": forms.TimeInput(attrs={"type": "time", "step": 1}),
            "patient_birth_date": forms.DateInput(attrs={"type": "date"}),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["study_instance_uid"].disabled = True
        self.fields["patient_sex"] = forms.ChoiceField(
            label="Sex", required=False, choices=[("", "—"), ("M", "M"), ("F", "F"), ("O", "O")]
        )
        self.fields["pregnancy_status"] = forms.TypedChoiceField(
            label="Pregnancy status",
            required=False,
            coerce=int,
            empty_value=None,
            choices=[
                ("", "—"),
                (1, "1 not pregnant"),
                (2, "2 possibly pregnant"),
                (3, "3 definitely pregnant"),
                (4, "4 unknown"),
            ],
        )

    def workitem_data(self, *, changed_only: bool = False) -> dict[str, Any]:
        """The cleaned form as the DICOM-keyword payload the worklist services take (the
        StudyInstanceUID of an existing workitem left out: it never changes)."""
        payload = {}
        for column, value in self.cleaned_data.items():
            field = _BY_COLUMN.get(column)
            if field is None or (column == "study_instance_uid" and self.instance.pk):
                continue
            if changed_only and column not in self.changed_data:
                continue
            payload[field.keyword] = _to_dicom(value)
        return payload

    def clean(self):
        cleaned = super().clean()
        payload = self.workitem_data()
        try:
            values = validate_workitem(payload, partial=bool(self.instance.pk))
        except WorkitemInvalid as exc:
            for keyword, reasons in exc.errors.items():
                field = next((f for f in FIELDS if f.keyword == keyword), None)
                target = field.column if field and field.column in self.fields else None
                for reason in reasons:
                    self.add_error(target, f"{keyword} {reason}" if target is None else reason)
            return cleaned
        cleaned.update(values)
        return cleaned
