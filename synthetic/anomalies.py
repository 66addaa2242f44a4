"""Plant the anomalies of every POLICY.md category, and decoys that must not be flagged.

Each planted case edits the natural city through small frames (no loop over the population) and
adds a row to the answer key: kind (anomaly | decoy), category, subject_type, subject_id, program,
variant. Subjects are taken from persons not yet involved in anything else, so that one planted
case raises exactly the warning it is planted for.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from synthetic import pools
from synthetic.calendar import Calendar
from synthetic.idnum import with_check_char
from synthetic.natural import SLOTS, claims_for
from synthetic.people import age_at
from synthetic.programs import NEVER, gaoling_amount, monthly, with_indices


def _update(frame: pl.DataFrame, changes: pl.DataFrame, on: str = "pid") -> pl.DataFrame:
    """Overwrite the columns of `changes` on the rows of `frame` matching `on`."""
    cols = [c for c in changes.columns if c != on]
    j = frame.join(changes, on=on, how="left", suffix="__new")
    return j.with_columns(
        [pl.when(pl.col(on).is_in(changes[on].implode())).then(pl.col(f"{c}__new")).otherwise(pl.col(c)).alias(c)
         for c in cols]
    ).drop([f"{c}__new" for c in cols])


class Planter:
    def __init__(self, city: dict[str, pl.DataFrame], rng: np.random.Generator, cal: Calendar, per_variant: int):
        self.c = city
        self.rng = rng
        self.cal = cal
        self.k = per_variant
        self.key: list[dict] = []
        # what each person is already part of: programs, home-care orders, training claims, posts
        self.things = pl.concat([
            city["payments"].select("pid", thing="program_code"), city["orders"].select("pid", thing=pl.lit("orders")),
            city["claims"].select("pid", thing=pl.lit("claims")), city["servants"].select("pid", thing=pl.lit("servant")),
        ]).unique().group_by("pid").agg(pl.col("thing").sort())
        self.used: set[int] = set()
        self.used_hh: set[str] = set()
        self.next_pid = int(city["people"]["pid"].max()) + 1
        self.next_seq = 0

    # ---- bookkeeping -------------------------------------------------------------------------
    def note(self, kind: str, category: str, subject_type: str, subject_ids, program: str | None, variant: str):
        for sid in subject_ids:
            self.key.append(dict(kind=kind, category=category, subject_type=subject_type, subject_id=str(sid),
                                 program_code=program, variant=variant))

    def take(self, frame: pl.DataFrame, k: int | None = None, by_household: bool = False) -> pl.DataFrame:
        """k rows of `frame` whose persons (and households) are not involved in anything yet."""
        k = self.k if k is None else k
        frame = frame.filter(~pl.col("pid").is_in(list(self.used)))
        if by_household:
            frame = frame.filter(~pl.col("household_id").is_in(list(self.used_hh))).unique("household_id", keep="first",
                                                                                               maintain_order=True)
        frame = frame.unique("pid", keep="first", maintain_order=True).sort("pid")  # joins do not fix row order
        if frame.height > k:
            frame = frame.sample(n=k, seed=int(self.rng.integers(1 << 31)))
        self.used.update(frame["pid"].to_list())
        if "household_id" in frame.columns:
            self.used_hh.update(frame["household_id"].to_list())
        return frame

    def people(self) -> pl.DataFrame:
        return self.c["people"]

    def involved_in(self, *things: str) -> pl.DataFrame:
        """People part of exactly these things (programs, 'orders', 'claims', 'servant') and nothing else."""
        want = sorted(things)
        pids = self.things.filter(pl.col("thing") == pl.lit(pl.Series([want]))).select("pid")
        return self.people().join(pids, on="pid")

    def free(self) -> pl.DataFrame:
        """Registered people alive all year who are part of nothing yet."""
        return self.people().filter(pl.col("payable_until") == 11).join(self.things.select("pid"), on="pid", how="anti")

    def paid(self, program: str, periods: int = 12, *also: str) -> pl.DataFrame:
        """People paid by `program` (and nothing else but `also`) in at least `periods` periods."""
        pays = self.c["payments"].filter(pl.col("program_code") == program)
        n = pays.group_by("pid").agg(n=pl.len(), amount=pl.col("amount").first())
        return self.involved_in(program, *also).join(n.filter(pl.col("n") >= periods), on="pid")

    def gaoling_full(self, min_age: int = 80, max_age: int = 150) -> pl.DataFrame:
        age = age_at(pl.col("birth_date"), self.cal.first)
        return self.paid("GAOLING").filter((age >= min_age) & (age <= max_age))

    def set_people(self, changes: pl.DataFrame):
        self.c["people"] = with_indices(_update(self.c["people"], changes), self.cal)

    def drop_payments(self, pids: pl.DataFrame, program: str, after: str = "after_idx"):
        """Remove `program` payments of pids for periods after their `after` index."""
        p = self.c["payments"].join(pids.select("pid", pl.col(after).alias("_cut")), on="pid", how="left")
        self.c["payments"] = p.filter(
            ~((pl.col("program_code") == program) & pl.col("_cut").is_not_null() & (pl.col("idx") > pl.col("_cut")))
        ).drop("_cut")

    def add_payments(self, recipients: pl.DataFrame, program: str):
        self.c["payments"] = pl.concat([self.c["payments"], monthly(recipients, program, self.cal)], how="vertical_relaxed")

    def day_in(self, idx: pl.Expr | int, n: int) -> pl.Expr:
        """A date inside period idx (days 1-28)."""
        first = pl.date(self.cal.first.year, self.cal.first.month, 1)
        base = first.dt.offset_by(pl.format("{}mo", idx if isinstance(idx, pl.Expr) else pl.lit(idx)))
        return base + pl.duration(days=pl.Series(self.rng.integers(0, 28, n)))

    def new_person(self, like: pl.DataFrame, **changes) -> pl.DataFrame:
        """Register new persons modelled on `like` (one row each), each in a household of their own."""
        n = like.height
        pid = pl.Series(np.arange(self.next_pid, self.next_pid + n))
        self.next_pid += n
        seq = pl.Series([f"{9 * 100 + ((self.next_seq + i) % 40) * 2:03d}" for i in range(n)])
        self.next_seq += n
        df = like.with_columns(pid=pid, **changes)
        parity = pl.when(pl.col("sex") == "男").then(1).otherwise(0)
        df = df.with_columns(
            id_number=with_check_char(pl.concat_str([
                pl.col("region"), pl.col("birth_date").dt.strftime("%Y%m%d"),
                (seq.cast(pl.Int32) + parity).cast(pl.String).str.zfill(3)])),
            household_id=pl.col("county_code") + pl.lit("8") + pid.cast(pl.String).str.zfill(8),
            relation_to_head=pl.lit("户主"),
            account=pl.lit("62179") + pid.cast(pl.String).str.zfill(14),
        ).drop("region")
        self.c["people"] = pl.concat([self.c["people"], df.select(self.c["people"].columns)], how="vertical_relaxed")
        self.used.update(df["pid"].to_list())
        return df

    # ---- the categories ----------------------------------------------------------------------
    def deceased_paid(self):
        cal = self.cal
        # registration and death record agree; paid three months past the month of death
        for variant, reg, late in [("paid_after_death", True, 0), ("death_only_in_death_records", False, 0),
                                   ("registration_later_than_record", True, 3)]:
            t = self.take(self.gaoling_full())
            j = pl.Series(self.rng.integers(2, 7, t.height), dtype=pl.Int32)
            d = t.select("pid").with_columns(idx=j).with_columns(death=self.day_in(pl.col("idx"), t.height))
            ch = d.select("pid", dr_date="death", dr_source=pl.lit("火化"),
                          reg_status=pl.lit("死亡" if reg else "正常"),
                          reg_status_date=(pl.col("death").dt.offset_by(f"{late}mo") if reg else pl.lit(None, pl.Date)))
            self.set_people(ch)
            self.drop_payments(d.with_columns(after_idx=pl.col("idx") + 3), "GAOLING")
            self.note("anomaly", "deceased_paid", "person", t["id_number"], "GAOLING", variant)
        # a DIBAO head dies; the household's allowance goes on being paid to him
        t = self.take(self.paid("DIBAO").filter(pl.col("relation_to_head") == "户主"), by_household=True)
        self.set_people(t.select("pid", dr_date=self.day_in(4, t.height), dr_source=pl.lit("医院")))
        self.note("anomaly", "deceased_paid", "person", t["id_number"], "DIBAO", "dibao_head_dead")
        # decoys: paid for the month of death only; record in month j, registration a month later
        for variant, late in [("paid_for_month_of_death", 0), ("registration_a_month_after_record", 1)]:
            t = self.take(self.gaoling_full())
            d = t.select("pid").with_columns(idx=pl.Series(self.rng.integers(2, 9, t.height), dtype=pl.Int32))
            d = d.with_columns(death=self.day_in(pl.col("idx"), t.height))
            self.set_people(d.select("pid", dr_date="death", dr_source=pl.lit("医院"), reg_status=pl.lit("死亡"),
                                     reg_status_date=pl.col("death").dt.offset_by(f"{late}mo")))
            self.drop_payments(d.rename({"idx": "after_idx"}), "GAOLING")
            self.note("decoy", "deceased_paid", "person", t["id_number"], "GAOLING", variant)
            self.note("decoy", "eligible_not_receiving", "person", t["id_number"], "GAOLING", "dead")

    def residency_ineligible(self):
        for program, variant in [("GAOLING", "gaoling_after_move"), ("CANJI_SHENGHUO", "canji_after_move")]:
            src = self.gaoling_full() if program == "GAOLING" else self.paid(program)
            t = self.take(src)
            d = t.select("pid").with_columns(idx=pl.Series(self.rng.integers(2, 8, t.height), dtype=pl.Int32))
            d = d.with_columns(moved=self.day_in(pl.col("idx"), t.height))
            self.set_people(d.select("pid", reg_status=pl.lit("迁出"), reg_status_date="moved"))
            self.drop_payments(d.with_columns(after_idx=pl.col("idx") + 2), program)
            self.note("anomaly", "residency_ineligible", "person", t["id_number"], program, variant)
        t = self.take(self.gaoling_full())
        d = t.select("pid").with_columns(idx=pl.Series(self.rng.integers(2, 8, t.height), dtype=pl.Int32))
        d = d.with_columns(moved=self.day_in(pl.col("idx"), t.height))
        self.set_people(d.select("pid", reg_status=pl.lit("迁出"), reg_status_date="moved"))
        self.drop_payments(d.rename({"idx": "after_idx"}), "GAOLING")
        self.note("decoy", "residency_ineligible", "person", t["id_number"], "GAOLING", "paid_for_month_of_move")
        self.note("decoy", "eligible_not_receiving", "person", t["id_number"], "GAOLING", "moved_out")

    def age_ineligible(self):
        cal, per = self.cal, self.cal.frame()
        # GAOLING before the 80th birthday: paid two months early
        ppl = self.free()
        turning = self.paid("GAOLING", 1).filter(pl.col("payable_until") == 11).with_columns(
            turn_idx=cal.idx_of(pl.col("birth_date").dt.offset_by("80y"))
        ).filter((pl.col("turn_idx") >= 3) & (pl.col("turn_idx") <= 9))
        t = self.take(turning)
        self.add_payments(t.with_columns(from_idx=pl.col("turn_idx") - 2, until_idx=pl.col("turn_idx") - 1,
                                         amount=pl.lit(100)), "GAOLING")
        self.note("anomaly", "age_ineligible", "person", t["id_number"], "GAOLING", "gaoling_under_80")
        # decoy: turns 80 inside the window and is paid from that very month (the birthday may be the last day)
        month_end_birthday = turning.filter(
            pl.col("birth_date").dt.offset_by("1d").dt.day() == 1)
        t = self.take(month_end_birthday, k=max(1, self.k // 2))
        t = pl.concat([t, self.take(turning.filter(pl.col("birth_date").dt.day() < 28))])
        self.note("decoy", "age_ineligible", "person", t["id_number"], "GAOLING", "turns_80_in_period")
        # GUER to someone who turns 18 in the window; decoy: turns 18 after it
        for variant, lo, hi, kind in [("guer_18_or_over", 3, 8, "anomaly"), ("guer_turns_18_after_window", 12, 14, "decoy")]:
            kids = ppl.with_columns(turn_idx=cal.idx_of(pl.col("birth_date").dt.offset_by("18y"))).filter(
                (pl.col("turn_idx") >= lo) & (pl.col("turn_idx") <= hi))
            t = self.take(kids)
            self.add_payments(t.with_columns(from_idx=pl.lit(0), until_idx=pl.lit(11),
                                             amount=pl.lit(pools.MONTHLY["GUER"])), "GUER")
            self.note(kind, "age_ineligible", "person", t["id_number"], "GUER", variant)
        # PEIXUN outside 16-60 at the claim date; decoys on the boundaries
        first, last = cal.first, cal.as_of - dt.timedelta(days=1)
        # ages on the day the claim ages are farthest from the limit's side: over 60 already on the first
        # day, still under 16 on the last day of the window (claims fall anywhere in it)
        for variant, years, on, kind in [("peixun_over_60", (61, 64), first, "anomaly"),
                                         ("peixun_under_16", (14, 15), last, "anomaly")]:
            who = ppl.filter(age_at(pl.col("birth_date"), on).is_between(years[0], years[1]))
            t = self.take(who)
            self._claims(t, None)
            self.note(kind, "age_ineligible", "person", t["id_number"], "PEIXUN", variant)
        # claim on the 16th birthday; claim the day before the 61st birthday
        for variant, yrs, shift in [("peixun_on_16th_birthday", 16, 0), ("peixun_day_before_61st_birthday", 61, -1)]:
            who = ppl.with_columns(bd=pl.col("birth_date").dt.offset_by(f"{yrs}y") + pl.duration(days=shift)).filter(
                (pl.col("bd") >= pl.lit(first)) & (pl.col("bd") <= pl.lit(last)))
            t = self.take(who)
            self._claims(t, t["bd"])
            self.note("decoy", "age_ineligible", "person", t["id_number"], "PEIXUN", variant)
        # home care for an elder under 60; decoy: the first order on the 60th birthday
        who = ppl.filter(age_at(pl.col("birth_date"), last).is_between(57, 59))
        t = self.take(who)
        self._orders(t, self.day_in(6, t.height), hours=2)
        self.note("anomaly", "age_ineligible", "person", t["id_number"], "YANGLAO_FUWU", "home_care_under_60")
        who = ppl.with_columns(bd=pl.col("birth_date").dt.offset_by("60y")).filter(
            (pl.col("bd") >= pl.lit(first)) & (pl.col("bd") <= pl.lit(last)))
        t = self.take(who)
        self._orders(t, t["bd"], hours=2)
        self.note("decoy", "age_ineligible", "person", t["id_number"], "YANGLAO_FUWU", "home_care_on_60th_birthday")

    def _claims(self, who: pl.DataFrame, dates: pl.Series | None, certificates: pl.Series | None = None):
        cl = claims_for(who, self.rng, self.cal.first, self.cal.as_of - dt.timedelta(days=1), dates)
        if certificates is not None:
            cl = cl.with_columns(certificate_number=certificates)
        self.c["claims"] = pl.concat([self.c["claims"], cl], how="vertical_relaxed")

    def _orders(self, who: pl.DataFrame, start_dates, hours: float = 2.0, minutes: int | None = None, worker=None):
        """One order per person starting 09:00 on the given date, each by a worker of its own."""
        n = who.height
        dur = int(minutes if minutes is not None else hours * 60)
        start = (pl.Series(start_dates) if not isinstance(start_dates, pl.Expr) else None)
        df = who.select("pid", pl.col("id_number").alias("elder_id_number"), "county_code")
        df = df.with_columns(day=start if start is not None else start_dates)
        workers = worker if worker is not None else pl.Series([f"WX{self.next_seq + i:05d}" for i in range(n)])
        self.next_seq += n
        df = df.with_columns(
            worker_id=workers, provider=pl.lit(pools.PROVIDERS[0]), service_type=pl.lit("陪护"),
            start_time=pl.col("day").cast(pl.Datetime("us")) + pl.duration(hours=9),
        ).with_columns(end_time=pl.col("start_time") + pl.duration(minutes=dur),
                       amount=pl.lit(round(dur / 60 * 40))).drop("day")
        self.c["orders"] = pl.concat([self.c["orders"], df], how="vertical_relaxed")

    def duplicate_payment(self):
        pays = self.c["payments"]
        for program, variant, other_county in [("GAOLING", "same_county", False), ("CANJI_SHENGHUO", "two_counties", True)]:
            src = self.gaoling_full() if program == "GAOLING" else self.paid(program)
            t = self.take(src)
            idx = pl.Series(self.rng.integers(0, 11, t.height), dtype=pl.Int32)
            extra = pays.join(t.select("pid").with_columns(idx=idx), on=["pid", "idx"]).filter(
                pl.col("program_code") == program)
            if other_county:
                codes = sorted(pools.COUNTIES)
                extra = extra.with_columns(county_code=pl.col("county_code").replace_strict(
                    codes, codes[1:] + codes[:1]), township=pl.lit(None, pl.String), village=pl.lit(None, pl.String))
            self.c["payments"] = pl.concat([self.c["payments"], extra.with_columns(
                pay_date=pl.col("pay_date") + pl.duration(days=10))])
            self.note("anomaly", "duplicate_payment", "person", t["id_number"], program, variant)
        # decoys: both disability allowances in one period; two periods back-paid on one day
        both = self.paid("CANJI_SHENGHUO", 12, "CANJI_HULI")
        t = self.take(both)
        self.note("decoy", "duplicate_payment", "person", t["id_number"], "CANJI_SHENGHUO", "two_programs_one_period")
        t = self.take(self.gaoling_full())
        self.c["payments"] = self.c["payments"].with_columns(
            pay_date=pl.when(pl.col("pid").is_in(t["pid"].implode()) & (pl.col("idx") == 4)
                             & (pl.col("program_code") == "GAOLING"))
            .then(pl.col("pay_date").dt.offset_by("1mo")).otherwise(pl.col("pay_date")))
        self.note("decoy", "duplicate_payment", "person", t["id_number"], "GAOLING", "back_pay_two_periods_one_day")
        # decoy: a payment delivered twice (same payment_id in two files) is one payment
        t = self.take(self.gaoling_full())
        self.c["resend_pids"] = t.select("pid")
        self.note("decoy", "duplicate_payment", "person", t["id_number"], "GAOLING", "same_payment_id_resent")

    def duplicate_identity(self):
        codes = sorted(pools.COUNTIES)
        # the twin is paid one amount all window: keep to elders who stay in one GAOLING tier throughout
        base = self.gaoling_full(min_age=81).filter(~pl.col("name").str.contains("·")).filter(
            gaoling_amount(age_at(pl.col("birth_date"), self.cal.first))
            == gaoling_amount(age_at(pl.col("birth_date"), self.cal.month_end(11))))
        for variant, kind in [("homophone_name", "anomaly"), ("identical_name", "anomaly"),
                              ("other_sex", "decoy"), ("other_county", "decoy")]:
            t = self.take(base)
            like = t.select(self.people().columns).with_columns(
                region=pl.lit(pools.OTHER_REGIONS[0]), death_date=None, move_date=None)
            changes = {}
            if variant == "homophone_name":
                last = pl.col("name").str.slice(-1, 1)
                changes["name"] = pl.col("name").str.slice(0, pl.col("name").str.len_chars() - 1) + last.replace(pools.HOMOPHONES)
            if variant == "other_sex":
                changes["sex"] = pl.when(pl.col("sex") == "男").then(pl.lit("女")).otherwise(pl.lit("男"))
                changes["male"] = ~pl.col("male")
            if variant == "other_county":
                changes["county_code"] = pl.col("county_code").replace_strict(codes, codes[1:] + codes[:1])
                changes["township"] = pl.col("county_code").replace_strict(
                    codes, [pools.COUNTIES[c][2][0] for c in codes[1:] + codes[:1]])
            twin = self.new_person(like, **changes)
            self.add_payments(twin.with_columns(from_idx=pl.lit(3), until_idx=pl.lit(11),
                                                amount=gaoling_amount(age_at(pl.col("birth_date"), self.cal.first))),
                              "GAOLING")
            pair = pl.DataFrame({"a": t["id_number"], "b": twin["id_number"]})
            larger = pair.select(pl.max_horizontal("a", "b"))
            self.note(kind, "duplicate_identity", "person", larger.to_series(), "GAOLING", variant)

    def identity_unverified(self):
        rng = self.rng
        # ids not in the registration: a wrong check character, a valid unknown number, an impossible date
        n = self.k
        births = [f"{y}{m:02d}{d:02d}" for y, m, d in zip(rng.integers(1950, 1990, n), rng.integers(1, 13, n),
                                                          rng.integers(1, 29, n))]
        seqs = [f"{s:03d}" for s in rng.integers(100, 999, n)]
        id17 = pl.Series([f"320102{b}{s}" for b, s in zip(births, seqs)])
        good = pl.select(with_check_char(pl.lit(id17))).to_series()
        wrong = pl.Series([x[:-1] + ("0" if x[-1] != "0" else "1") for x in good.to_list()])
        bad_date = pl.select(with_check_char(pl.lit(pl.Series([f"340503{1950 + i % 30}0230{s}" for i, s in enumerate(seqs)])))).to_series()
        for variant, ids, program in [("invalid_check_character", wrong, "CANJI_SHENGHUO"),
                                      ("not_in_registration", good, "CANJI_HULI"),
                                      ("impossible_birth_date", bad_date, "CANJI_SHENGHUO")]:
            like = self.take(self.paid(program), k=len(ids))
            fake = like.head(len(ids)).with_columns(
                id_number=ids.head(like.height), pid=pl.Series(np.arange(self.next_pid, self.next_pid + like.height)),
                account=pl.lit("62178") + pl.Series(np.arange(self.next_pid, self.next_pid + like.height)).cast(pl.String).str.zfill(14),
                from_idx=pl.lit(5), until_idx=pl.lit(11), amount=pl.lit(pools.MONTHLY[program]))
            self.next_pid += like.height
            self.add_payments(fake, program)
            self.note("anomaly", "identity_unverified", "person", fake["id_number"], program, variant)
        # paid under a registered number with another person's name
        t = self.take(self.gaoling_full())
        self.c["payments"] = self.c["payments"].with_columns(
            name=pl.when(pl.col("pid").is_in(t["pid"].implode()) & (pl.col("idx") >= 6))
            .then(pl.lit("钱") + pl.col("name").str.slice(-1, 1) + pl.lit("富")).otherwise(pl.col("name")))
        self.note("anomaly", "identity_unverified", "person", t["id_number"], "GAOLING", "name_does_not_match")
        # decoys written in the forms real extracts use (the writer renders them): 15 digits, x, full width, •
        forms = {}
        legacy = self.gaoling_full().filter(pl.col("birth_date").dt.year() < 2000)
        forms["legacy15"] = self.take(legacy)
        forms["lower_x"] = self.take(self.gaoling_full().filter(pl.col("id_number").str.ends_with("X")))
        forms["fullwidth"] = self.take(self.gaoling_full())
        minority = pl.concat([self.paid(p) for p in ("GAOLING", "CANJI_SHENGHUO", "CANJI_HULI")], how="diagonal_relaxed")
        forms["dot_variant"] = self.take(minority.filter(pl.col("name").str.contains("·")), k=max(1, self.k // 2))
        rows = []
        for form, t in forms.items():
            rows.append(t.select("pid", _form=pl.lit(form)))
            self.note("decoy", "identity_unverified", "person", t["id_number"], None if form == "dot_variant" else "GAOLING", form)
        self.c["forced_forms"] = pl.concat(rows)

    def shared_account(self):
        # three elders of three households paid into one account from period 4
        t = self.take(self.gaoling_full(), k=3 * self.k, by_household=True)
        groups = t.with_columns(g=pl.int_range(pl.len()) // 3).filter(pl.len().over("g") == 3)
        acct = groups.group_by("g", maintain_order=True).agg(shared=pl.col("account").first())
        groups = groups.join(acct, on="g")
        p = self.c["payments"].join(groups.select("pid", "shared"), on="pid", how="left")
        self.c["payments"] = p.with_columns(bank_account=pl.when(pl.col("shared").is_not_null() & (pl.col("idx") >= 4))
                                            .then(pl.col("shared")).otherwise(pl.col("bank_account"))).drop("shared")
        self.note("anomaly", "shared_account", "account", acct["shared"], None, "three_households_one_account")
        # decoys: three members of one household share the head's account; two households share one
        hh = self.people().filter((pl.col("payable_until") == 11)).group_by("household_id").agg(
            n=pl.len(), pids=pl.col("pid"))
        hh = hh.filter((pl.col("n") >= 3) & ~pl.col("household_id").is_in(list(self.used_hh)))
        members = self.people().join(hh.select("household_id"), on="household_id").filter(
            ~pl.col("household_id").is_in(
                self.people().filter(pl.col("pid").is_in(list(self.used)))["household_id"].implode()))
        # households where nobody is paid CANJI_SHENGHUO already (else the decoy's payment would be a duplicate)
        sheng = self.c["payments"].filter(pl.col("program_code") == "CANJI_SHENGHUO").select("pid").unique()
        members = members.filter(~pl.col("household_id").is_in(
            self.people().join(sheng, on="pid")["household_id"].implode()))
        members = members.sort("pid")
        hhs = members["household_id"].unique(maintain_order=True).head(self.k)
        members = members.filter(pl.col("household_id").is_in(hhs.implode())).with_columns(
            r=pl.int_range(pl.len()).over("household_id")).filter(pl.col("r") < 3)
        self.used.update(members["pid"].to_list())
        self.used_hh.update(hhs.to_list())
        head_acct = self.people().filter(pl.col("relation_to_head") == "户主").select("household_id", shared="account")
        members = members.join(head_acct, on="household_id")
        self.add_payments(members.with_columns(account=pl.col("shared"), from_idx=pl.lit(0), until_idx=pl.lit(11),
                                               amount=pl.lit(pools.MONTHLY["CANJI_SHENGHUO"])), "CANJI_SHENGHUO")
        self.note("decoy", "shared_account", "account", members["shared"].unique(maintain_order=True), None,
                  "one_household_three_members")
        t = self.take(self.gaoling_full(), k=2 * self.k, by_household=True)
        pairs = t.with_columns(g=pl.int_range(pl.len()) // 2).filter(pl.len().over("g") == 2)
        acct = pairs.group_by("g", maintain_order=True).agg(shared=pl.col("account").first())
        pairs = pairs.join(acct, on="g")
        p = self.c["payments"].join(pairs.select("pid", "shared"), on="pid", how="left")
        self.c["payments"] = p.with_columns(bank_account=pl.coalesce("shared", "bank_account")).drop("shared")
        self.note("decoy", "shared_account", "account", acct["shared"], None, "two_households_one_account")

    def _dibao_households(self, need_member: bool = False) -> pl.DataFrame:
        heads = self.paid("DIBAO").filter(pl.col("relation_to_head") == "户主")
        heads = heads.filter(~pl.col("household_id").is_in(list(self.used_hh)))
        if need_member:
            adults = self.people().filter((pl.col("relation_to_head") != "户主")
                                          & age_at(pl.col("birth_date"), self.cal.first).is_between(22, 59))
            heads = heads.join(adults.select("household_id", m_pid="pid", m_id="id_number", m_name="name"),
                               on="household_id").unique("household_id", keep="first", maintain_order=True)
        return heads

    def _add_vehicle(self, owners: pl.DataFrame, vtype: str, status: str):
        v = owners.select(owner_pid="pid", owner_id_number="id_number", owner_name="name").with_columns(
            vehicle_type=pl.lit(vtype), status=pl.lit(status), registration_date=pl.lit(dt.date(2021, 6, 1)),
            assessed_value=pl.lit(85_000.0))
        self.c["vehicles"] = pl.concat([self.c["vehicles"], v], how="vertical_relaxed")

    def _add_property(self, owners: pl.DataFrame, usage: str, status: str, cert: pl.Series | None = None):
        start = int(self.c["properties"]["cert"].max()) + 1
        p = owners.select("county_code", owner_pid="pid", owner_id_number="id_number", owner_name="name").with_columns(
            cert=cert if cert is not None else pl.Series(np.arange(start, start + owners.height)),
            usage=pl.lit(usage), status=pl.lit(status), area_m2=pl.lit(88.5), registration_date=pl.lit(dt.date(2019, 3, 1)))
        self.c["properties"] = pl.concat([self.c["properties"], p.select(self.c["properties"].columns)], how="vertical_relaxed")

    def asset_ineligible(self):
        homes = self.c["properties"].filter((pl.col("usage") == "住宅") & (pl.col("status") == "现势"))
        home_hh = self.people().join(homes.select(pid="owner_pid"), on="pid")["household_id"].unique()
        cases = [("car", "anomaly"), ("shop", "anomaly"), ("second_home", "anomaly"),
                 ("motorcycle_only", "decoy"), ("scrapped_car", "decoy"), ("cancelled_shop", "decoy"),
                 ("home_and_parking", "decoy"), ("co_owned_home", "decoy")]
        for variant, kind in cases:
            pool = self._dibao_households(need_member=variant in ("second_home", "co_owned_home"))
            if variant in ("second_home", "home_and_parking"):
                pool = pool.filter(pl.col("household_id").is_in(home_hh.implode()))
            if variant == "co_owned_home":
                pool = pool.filter(~pl.col("household_id").is_in(home_hh.implode()))
            t = self.take(pool, by_household=True)
            member = t.select(pid="m_pid", id_number="m_id", name="m_name", county_code="county_code") \
                if "m_pid" in t.columns else t
            if variant == "car":
                self._add_vehicle(t, "小型轿车", "正常")
            elif variant == "motorcycle_only":
                self._add_vehicle(t, "普通二轮摩托车", "正常")
            elif variant == "scrapped_car":
                self._add_vehicle(t, "小型轿车", "报废")
            elif variant == "shop":
                self._add_property(t, "商业", "现势")
            elif variant == "cancelled_shop":
                self._add_property(t, "商业", "注销")
            elif variant == "home_and_parking":
                self._add_property(t, "车位", "现势")
            elif variant == "second_home":
                self._add_property(member, "住宅", "现势")
            elif variant == "co_owned_home":
                start = int(self.c["properties"]["cert"].max()) + 1
                certs = pl.Series(np.arange(start, start + t.height))
                self._add_property(t, "住宅", "现势", certs)
                self._add_property(member, "住宅", "现势", certs)
            self.note(kind, "asset_ineligible", "household", t["household_id"], "DIBAO", variant)
        tekun = self.take(self.paid("TEKUN"), by_household=True)
        self._add_vehicle(tekun, "小型越野客车", "正常")
        self.note("anomaly", "asset_ineligible", "household", tekun["household_id"], "TEKUN", "tekun_car")

    def _add_servant(self, who: pl.DataFrame, role: str, start: dt.date, end: dt.date | None):
        s = who.select("pid", "id_number", "name", "county_code", "township", "village", "household_id").with_columns(
            employer=pl.lit(pools.EMPLOYERS.get(role, ["村民委员会"])[0]), role=pl.lit(role),
            start_date=pl.lit(start), end_date=pl.lit(end, pl.Date))
        self.c["servants"] = pl.concat([self.c["servants"], s.select(self.c["servants"].columns)], how="vertical_relaxed")

    def public_servant_and_cadre(self):
        cal = self.cal
        before = cal.first - dt.timedelta(days=40)
        for category, role, variant, end, kind in [
            ("public_servant", "公务员", "dibao_member_in_post", None, "anomaly"),
            ("public_servant", "事业单位", "dibao_member_post_ended_before_period", before, "decoy"),
            ("cadre_relative", "村两委", "dibao_member_on_committee", None, "anomaly"),
            ("cadre_relative", "社区两委", "dibao_member_committee_ended_before_period", before, "decoy"),
        ]:
            t = self.take(self._dibao_households(need_member=True), by_household=True)
            member = t.select("household_id", "county_code", "township", "village", pid="m_pid", id_number="m_id", name="m_name")
            self.used.update(member["pid"].to_list())
            self._add_servant(member, role, dt.date(2015, 3, 1), end)
            subject = t["id_number"] if category == "public_servant" else t["household_id"]
            stype = "person" if category == "public_servant" else "household"
            self.note(kind, category, stype, subject, "DIBAO", variant)
        # approved by a member of the same household
        t = self.take(self._dibao_households(need_member=True), by_household=True)
        self.used.update(t["m_pid"].to_list())
        appr = t.select("household_id", approver="m_id")
        p = self.c["payments"].join(appr, on="household_id", how="left")
        self.c["payments"] = p.with_columns(approved_by=pl.when(pl.col("approver").is_not_null() & (pl.col("program_code") == "DIBAO"))
                                            .then(pl.col("approver")).otherwise(pl.col("approved_by"))).drop("approver")
        self.note("anomaly", "cadre_relative", "household", t["household_id"], "DIBAO", "approved_by_household_member")
        # PEIXUN by a servant in post; decoys: post ended before, or began after, the claim
        age = age_at(pl.col("birth_date"), cal.first)
        adults = self.free().filter(age.is_between(25, 55))
        for variant, start, end, kind in [
            ("peixun_servant_in_post", dt.date(2012, 1, 1), None, "anomaly"),
            ("peixun_servant_post_ended", dt.date(2012, 1, 1), before, "decoy"),
            ("peixun_servant_post_began_after_claim", cal.as_of - dt.timedelta(days=20), None, "decoy"),
        ]:
            t = self.take(adults)
            self._add_servant(t, "事业单位", start, end)
            self._claims(t, pl.Series([cal.month(5)] * t.height))
            self.note(kind, "public_servant", "person", t["id_number"], "PEIXUN", variant)

    def training_claim_abuse(self):
        cal = self.cal
        age = age_at(pl.col("birth_date"), cal.as_of)
        adults = self.free().filter(age.is_between(20, 55))
        # one certificate claimed by two people; and by the same person twice
        a = self.take(adults)
        b = self.take(adults, k=a.height)
        certs = pl.Series([f"SX{cal.as_of.year}{i:06d}" for i in range(a.height)])
        self._claims(a, pl.Series([cal.month(2)] * a.height), certs)
        self._claims(b, pl.Series([cal.month(8)] * a.height), certs)
        self.note("anomaly", "training_claim_abuse", "person", pl.concat([a["id_number"], b["id_number"]]), "PEIXUN",
                  "certificate_claimed_by_two")
        t = self.take(adults)
        certs = pl.Series([f"SY{cal.as_of.year}{i:06d}" for i in range(t.height)])
        self._claims(t, pl.Series([cal.month(3)] * t.height), certs)
        self._claims(t, pl.Series([cal.month(9)] * t.height), certs)
        self.note("anomaly", "training_claim_abuse", "person", t["id_number"], "PEIXUN", "certificate_claimed_twice")
        # four claims in one calendar year; decoys: three in a year, four across two years
        year2 = [i for i in range(12) if cal.month(i).year == cal.month(11).year]
        year1 = [i for i in range(12) if cal.month(i).year != cal.month(11).year]
        plans = [("four_in_one_year", year2[:4], "anomaly"), ("three_in_one_year", year2[:3], "decoy")]
        if len(year1) >= 2:
            plans.append(("four_across_two_years", year1[-2:] + year2[:2], "decoy"))
        for variant, months, kind in plans:
            t = self.take(adults)
            for m in months:
                self._claims(t, pl.Series([cal.month(m) + dt.timedelta(days=9)] * t.height))
            self.note(kind, "training_claim_abuse", "person", t["id_number"], "PEIXUN", variant)

    def service_order_anomaly(self):
        cal = self.cal
        orders = self.c["orders"]
        served = pl.concat([self.involved_in("orders", *p).select("pid") for p in
                            [(), ("GAOLING",), ("CANJI_SHENGHUO",), ("CANJI_HULI",), ("GAOLING", "CANJI_SHENGHUO")]])
        # an elder whose last three orders start after the date of death; decoy: last order on the day of death
        for variant, nth, kind in [("order_after_death", 3, "anomaly"), ("order_on_day_of_death", 1, "decoy")]:
            t = self.take(self.people().join(served.select("pid").unique(), on="pid"))
            o = self.c["orders"].join(t.select("pid"), on="pid").sort("pid", "start_time")
            last = o.group_by("pid").agg(pl.col("start_time").sort().reverse().get(nth - 1).alias("cut"))
            if variant == "order_after_death":
                death = last.select("pid", d=(pl.col("cut") - pl.duration(days=1)).dt.date())
            else:
                death = last.select("pid", d=pl.col("cut").dt.date())
            self.set_people(death.select("pid", dr_date="d", dr_source=pl.lit("医院"), reg_status=pl.lit("死亡"),
                                         reg_status_date="d"))
            cut = self.people().join(death.select("pid"), on="pid").select("pid", after_idx="death_idx")
            for program in ("GAOLING", "CANJI_SHENGHUO", "CANJI_HULI", "TEKUN"):
                self.drop_payments(cut, program)
            self.note(kind, "service_order_anomaly", "person", t["id_number"], "YANGLAO_FUWU", variant)
        # a worker with two orders overlapping by 30 minutes; decoys: by 14 minutes, back to back
        morning = orders.filter(pl.col("start_time").dt.hour().is_in([8, 14])).with_columns(
            order_key=pl.concat_str([pl.col("worker_id"), pl.col("start_time").cast(pl.String)]))
        for variant, overlap, kind in [("worker_overlap_30min", 30, "anomaly"), ("worker_overlap_14min", 14, "decoy"),
                                       ("worker_back_to_back", 0, "decoy")]:
            base = morning.filter(~pl.col("worker_id").is_in(list(self.used_hh))).unique("worker_id", keep="first",
                                                                                         maintain_order=True)
            base = base.sort("order_key").sample(n=min(self.k, base.height), seed=int(self.rng.integers(1 << 31)))
            self.used_hh.update(base["worker_id"].to_list())
            extra = base.with_columns(start_time=pl.col("end_time") - pl.duration(minutes=overlap)).with_columns(
                end_time=pl.col("start_time") + pl.duration(minutes=40), service_type=pl.lit("助洁"))
            self.c["orders"] = pl.concat([self.c["orders"], extra.drop("order_key")])
            self.note(kind, "service_order_anomaly", "worker", base["worker_id"], "YANGLAO_FUWU", variant)
        # an order longer than 8 hours; decoy: exactly 8 hours
        elders = self.free().filter(age_at(pl.col("birth_date"), cal.first) >= 65)
        for variant, minutes, kind in [("order_over_8_hours", 8 * 60 + 1, "anomaly"), ("order_exactly_8_hours", 8 * 60, "decoy")]:
            t = self.take(elders)
            self._orders(t, self.day_in(7, t.height), minutes=minutes)
            self.note(kind, "service_order_anomaly", "person", t["id_number"], "YANGLAO_FUWU", variant)

    def eligible_not_receiving(self):
        # alive and registered to the end: an elder who dies or moves out in the last period would be
        # a lead only until then (the full run at the batch date rightly raises nothing)
        stays = (pl.col("death_idx") == NEVER) & (pl.col("move_idx") == NEVER)
        for variant, after in [("never_paid", -1), ("stopped_paying", 7)]:
            t = self.take(self.gaoling_full().filter(stays))
            self.drop_payments(t.select("pid", after_idx=pl.lit(after)), "GAOLING")
            self.note("anomaly", "eligible_not_receiving", "person", t["id_number"], "GAOLING", variant)
        # decoys: alive by the registration but dead by the death record; turns 80 after the last period
        t = self.take(self.gaoling_full())
        self.set_people(t.select("pid", dr_date=self.day_in(9, t.height), dr_source=pl.lit("火化")))
        self.drop_payments(t.select("pid", after_idx=pl.lit(9)), "GAOLING")
        self.note("decoy", "eligible_not_receiving", "person", t["id_number"], "GAOLING", "dead_by_death_record_only")
        self.note("decoy", "deceased_paid", "person", t["id_number"], "GAOLING", "dead_by_death_record_only")
        nxt = self.cal.month_end(11) + dt.timedelta(days=1)
        turning = self.people().filter((pl.col("payable_until") == 11) & (
            age_at(pl.col("birth_date"), self.cal.month_end(11)) == 79) & (
            age_at(pl.col("birth_date"), (nxt.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)) == 80))
        t = self.take(turning)
        self.note("decoy", "eligible_not_receiving", "person", t["id_number"], "GAOLING", "turns_80_after_last_period")

    def amount_mismatch(self):
        cal = self.cal
        for variant, lo, hi, amount in [("age_90s_paid_100", 91, 98, 100), ("age_80s_paid_300", 81, 88, 300)]:
            t = self.take(self.gaoling_full(lo, hi))
            self.c["payments"] = self.c["payments"].with_columns(
                amount=pl.when(pl.col("pid").is_in(t["pid"].implode()) & (pl.col("program_code") == "GAOLING")
                               & (pl.col("idx") >= 3)).then(pl.lit(float(amount))).otherwise(pl.col("amount")))
            self.note("anomaly", "amount_mismatch", "person", t["id_number"], "GAOLING", variant)
        # turns 90 inside the window: paid 100 before the birthday month and 300 from it (decoy);
        # kept on 100 after turning 90 (anomaly)
        turning = self.gaoling_full().with_columns(turn_idx=cal.idx_of(pl.col("birth_date").dt.offset_by("90y"))).filter(
            pl.col("turn_idx").is_between(2, 9))
        t = self.take(turning)
        self.note("decoy", "amount_mismatch", "person", t["id_number"], "GAOLING", "turns_90_paid_new_tier")
        t = self.take(turning)
        p = self.c["payments"].join(t.select("pid", "turn_idx"), on="pid", how="left")
        self.c["payments"] = p.with_columns(amount=pl.when(pl.col("turn_idx").is_not_null() & (pl.col("program_code") == "GAOLING"))
                                            .then(pl.lit(100.0)).otherwise(pl.col("amount"))).drop("turn_idx")
        self.note("anomaly", "amount_mismatch", "person", t["id_number"], "GAOLING", "turns_90_still_paid_100")

    def model_outlier(self, k: int):
        """Behaviour no rule names: a disability allowance at 6-10x the norm, paid in bursts by another
        county into a new account each time."""
        cal = self.cal
        age = age_at(pl.col("birth_date"), cal.first)
        who = self.free().filter(age.is_between(30, 59))
        t = self.take(who, k=k)
        codes = sorted(pools.COUNTIES)
        rec = t.with_columns(from_idx=pl.lit(0), until_idx=pl.lit(11),
                             amount=pl.Series(self.rng.integers(6, 11, t.height) * 90.0),
                             pay_county=pl.col("county_code").replace_strict(codes, codes[2:] + codes[:2]))
        pays = monthly(rec, "CANJI_SHENGHUO", cal).with_columns(
            pay_date=pl.date(cal.month(0).year, cal.month(0).month, 1).dt.offset_by(
                pl.format("{}mo", (pl.col("idx") // 4) * 4 + 3)),
            bank_account=pl.lit("62176") + pl.col("pid").cast(pl.String).str.zfill(12) + pl.col("idx").cast(pl.String).str.zfill(2),
            township=pl.lit(None, pl.String), village=pl.lit(None, pl.String))
        self.c["payments"] = pl.concat([self.c["payments"], pays], how="vertical_relaxed")
        self.note("anomaly", "model_outlier", "person", t["id_number"], "CANJI_SHENGHUO", "burst_high_amount_other_county")

    def plant_all(self, outliers: int):
        self.deceased_paid()
        self.residency_ineligible()
        self.age_ineligible()
        self.duplicate_payment()
        self.duplicate_identity()
        self.identity_unverified()
        self.shared_account()
        self.asset_ineligible()
        self.public_servant_and_cadre()
        self.training_claim_abuse()
        self.service_order_anomaly()
        self.eligible_not_receiving()
        self.amount_mismatch()
        self.model_outlier(outliers)
        return pl.DataFrame(self.key, schema={"kind": pl.String, "category": pl.String, "subject_type": pl.String,
                                              "subject_id": pl.String, "program_code": pl.String, "variant": pl.String})
