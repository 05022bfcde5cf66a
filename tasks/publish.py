"""The whole run: every selected cloud built, converted, uploaded and verified."""

from __future__ import annotations

import datetime

import luigi

from tasks.verify import VerifyImage


class Publish(luigi.WrapperTask):
    """``imagefleet run``: one night's publication; the date makes each night distinct."""

    date = luigi.DateParameter(default=datetime.date.today())
    digest = luigi.Parameter()
    clouds = luigi.ListParameter()

    def requires(self):
        return [VerifyImage(digest=self.digest, cloud=c) for c in self.clouds]
