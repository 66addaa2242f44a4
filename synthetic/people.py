"""Persons and households: an age pyramid like China's 2020 census, households of 1-6."""
from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from synthetic import pools
from synthetic.idnum import with_check_char


def age_at(birth: pl.Expr, on: pl.Expr | dt.date) -> pl.Expr:
    """Full years completed on a date (vectorised)."""
    on = pl.lit(on) if isinstance(on, dt.date) else on
    before_birthday = (on.dt.month() < birth.dt.month()) | (
        (on.dt.month() == birth.dt.month()) & (on.dt.day() < birth.dt.day())
    )
    return (on.dt.year() - birth.dt.year() - before_birthday.cast(pl.Int32)).cast(pl.Int32)


def _sample_ages(rng: np.random.Generator, n: int) -> np.ndarray:
    p = np.array(pools.AGE_BANDS) / sum(pools.AGE_BANDS)
    band = rng.choice(len(p), size=n, p=p)
    return band * 5 + rng.integers(0, 5, size=n)


def _pair_up(order: np.ndarray, p_couple: float, rng: np.random.Generator):
    """Walk `order` two by two; each pair is a couple with probability p_couple, else two singles.

    Returns (household index per person in `order`, is_spouse flag)."""
    n = len(order)
    pair = np.arange(n) // 2
    couple = rng.random(pair.max() + 1 if n else 0) < p_couple
    second = (np.arange(n) % 2 == 1)
    is_couple = couple[pair] & ~((n % 2 == 1) & (np.arange(n) == n - 1))
    # a couple shares one household; otherwise each person gets its own
    hh = np.where(is_couple, pair * 2, np.arange(n))
    return hh, is_couple & second


def _assign(targets: np.ndarray, head_age_sorted: np.ndarray, rng, spread: int) -> np.ndarray:
    pos = np.searchsorted(head_age_sorted, targets) + rng.integers(-spread, spread + 1, size=len(targets))
    return np.clip(pos, 0, len(head_age_sorted) - 1)


def make_people(n: int, rng: np.random.Generator, as_of: dt.date) -> pl.DataFrame:
    """One row per person with household, relation, place, sex, birth date, name and ID number."""
    age = _sample_ages(rng, n)
    male = rng.random(n) < 0.5
    elders = np.flatnonzero(age >= 60)
    adults = np.flatnonzero((age >= 18) & (age < 60))
    children = np.flatnonzero(age < 18)

    hh = np.full(n, -1, dtype=np.int64)
    rel = np.full(n, "", dtype=object)

    # adults: couples and singles, paired by similar age
    a_order = adults[np.argsort(age[adults] + rng.normal(0, 2, len(adults)), kind="stable")]
    a_hh, a_spouse = _pair_up(a_order, 0.8, rng)
    hh[a_order] = a_hh
    rel[a_order] = np.where(a_spouse, "配偶", "户主")
    next_id = n  # household numbers above n are free
    # elders: 30% live with an adult child's family, the rest alone or as couples
    e_perm = elders[rng.permutation(len(elders))]
    n_join = int(len(e_perm) * 0.3)
    e_join, e_own = e_perm[:n_join], e_perm[n_join:]
    e_order = e_own[np.argsort(age[e_own] + rng.normal(0, 3, len(e_own)), kind="stable")]
    e_hh, e_spouse = _pair_up(e_order, 0.55, rng)
    hh[e_order] = e_hh + next_id
    rel[e_order] = np.where(e_spouse, "配偶", "户主")
    next_id += n

    # heads of adult households sorted by age, to find plausible parents and children
    heads = a_order[rel[a_order] == "户主"]
    heads = heads[np.argsort(age[heads], kind="stable")]
    head_age = age[heads]
    size = np.zeros(next_id + n, dtype=np.int64)
    np.add.at(size, hh[hh >= 0], 1)

    # children join a household whose head is 22-40 years older; at most 6 members
    todo = children[rng.permutation(len(children))]
    for cap in (3, 3, 4, 4, 5, 5, 5):
        if not len(todo):
            break
        cand = heads[_assign(age[todo] + rng.integers(22, 41, len(todo)), head_age, rng, max(50, len(heads) // 40))]
        target = hh[cand]
        # keep the first children that fit, in order; the rest try again
        order = np.argsort(target, kind="stable")
        t_sorted = target[order]
        first = np.r_[True, t_sorted[1:] != t_sorted[:-1]]
        grp_start = np.maximum.accumulate(np.where(first, np.arange(len(t_sorted)), 0))
        rank = np.arange(len(t_sorted)) - grp_start
        fits = np.empty(len(todo), dtype=bool)
        fits[order] = size[t_sorted] + rank < cap
        hh[todo[fits]] = target[fits]
        np.add.at(size, target[fits], 1)
        todo = todo[~fits]
    rel[children] = np.where(male[children], "子", "女")
    # children left over, and 1% of all children, live with grandparents
    elder_heads = e_order[rel[e_order] == "户主"]
    to_gp = np.concatenate([todo, children[rng.random(len(children)) < 0.01]])
    to_gp = np.unique(to_gp)
    if len(elder_heads):
        hh[to_gp] = hh[elder_heads[rng.integers(0, len(elder_heads), len(to_gp))]]
        rel[to_gp] = np.where(male[to_gp], "孙子", "孙女")

    # elders who join a family: the head is 22-38 years younger; otherwise they live alone
    if len(e_join) and len(heads):
        cand = heads[_assign(age[e_join] - rng.integers(22, 39, len(e_join)), head_age, rng, max(50, len(heads) // 40))]
        target = hh[cand]
        ok = (size[target] < 6) & (age[e_join] - age[cand] >= 18)
        _, first_idx = np.unique(target[ok], return_index=True)  # one parent per household at most
        joined = np.zeros(len(e_join), dtype=bool)
        joined[np.flatnonzero(ok)[first_idx]] = True
        hh[e_join[joined]] = target[joined]
        np.add.at(size, target[joined], 1)
        rel[e_join[joined]] = np.where(male[e_join[joined]], "父亲", "母亲")
        # a second grandparent joins about half of those households (a parent couple of similar age)
        parents = e_join[joined]
        parents = parents[np.argsort(age[parents], kind="stable")]
        rest = e_join[~joined]
        cand = parents[_assign(age[rest], age[parents], rng, 3)] if len(parents) else rest
        target = hh[cand]
        ok = (size[target] < 6) & (rng.random(len(rest)) < 0.5) & (len(parents) > 0)
        _, first_idx = np.unique(target[ok], return_index=True)
        second = np.zeros(len(rest), dtype=bool)
        second[np.flatnonzero(ok)[first_idx]] = True
        hh[rest[second]] = target[second]
        rel[rest[second]] = "父亲"
        alone = rest[~second]
    else:
        alone = e_join
    hh[alone] = next_id + np.arange(len(alone))
    rel[alone] = "户主"
    # children with no household at all (tiny populations): their own
    orphan = np.flatnonzero(hh < 0)
    hh[orphan] = next_id + n + np.arange(len(orphan))
    rel[orphan] = "户主"

    # spouses are of the other sex than the head
    df = pl.DataFrame({"pid": np.arange(n), "hh": hh, "rel": rel.astype(str), "age0": age, "male": male})
    head_sex = df.filter(pl.col("rel") == "户主").select("hh", head_male=pl.col("male"))
    df = df.join(head_sex, on="hh", how="left").with_columns(
        male=pl.when(pl.col("rel") == "配偶").then(~pl.col("head_male")).otherwise(pl.col("male"))
    ).drop("head_male")
    df = df.with_columns(
        rel=pl.when(pl.col("rel") == "父亲").then(pl.when(pl.col("male")).then(pl.lit("父亲")).otherwise(pl.lit("母亲")))
        .otherwise(pl.col("rel"))
    )
    return _place_and_name(df, rng, as_of)


def _place_and_name(df: pl.DataFrame, rng: np.random.Generator, as_of: dt.date) -> pl.DataFrame:
    # households numbered densely, in a random order, and placed in counties/townships/villages
    hh_ids = df["hh"].unique().sort().to_numpy()
    n_hh = len(hh_ids)
    codes = list(pools.COUNTIES)
    w = np.array([pools.COUNTIES[c][1] for c in codes])
    county_i = rng.choice(len(codes), size=n_hh, p=w / w.sum())
    places = []
    for ci, code in enumerate(codes):
        for ti, town in enumerate(pools.COUNTIES[code][2]):
            for vi in range(4):
                stem = pools.VILLAGE_STEMS[(ti * 4 + vi + ci) % len(pools.VILLAGE_STEMS)]
                kind = pools.VILLAGE_KINDS[1 if town.endswith("镇") else 0]
                places.append((ci, code, town, f"{stem}{kind}"))
    place_df = pl.DataFrame(places, schema=["ci", "county_code", "township", "village"], orient="row")
    per_county = place_df.group_by("ci", maintain_order=True).len()["len"].to_numpy()
    offset = np.r_[0, np.cumsum(per_county)[:-1]].astype(np.int64)
    place_i = offset[county_i] + (rng.random(n_hh) * per_county[county_i]).astype(np.int64)
    seq = rng.permutation(n_hh)
    hh_df = pl.DataFrame({"hh": hh_ids, "place_i": place_i, "hh_seq": seq}).join(
        place_df.with_row_index("place_i").with_columns(pl.col("place_i").cast(pl.Int64)), on="place_i"
    ).with_columns(
        household_id=pl.concat_str([pl.col("county_code"), pl.col("hh_seq").cast(pl.String).str.zfill(9)])
    ).select("hh", "household_id", "county_code", "township", "village")
    df = df.join(hh_df, on="hh", how="left")

    n = df.height
    # birth dates: the sampled age plus a random day of the year
    days = (df["age0"].to_numpy() * 365.2425 + rng.random(n) * 365).astype(np.int64) + 1
    birth = np.datetime64(as_of) - days.astype("timedelta64[D]")
    born_here = rng.random(n) < 0.85
    region = np.where(born_here, df["county_code"].to_numpy(),
                      np.array(pools.OTHER_REGIONS)[rng.integers(0, len(pools.OTHER_REGIONS), n)])
    df = df.with_columns(
        birth_date=pl.Series(birth).cast(pl.Date),
        region=pl.Series(region),
        tie=pl.Series(rng.random(n)),
        base=pl.Series(rng.integers(0, 150, n)),
    )
    # sequence: odd for men, even for women, unique within (region, birth date)
    rank = pl.col("tie").rank("ordinal").over("region", "birth_date", "male").cast(pl.Int64) - 1
    seqno = (pl.col("base").min().over("region", "birth_date") + rank) * 2 + pl.when(pl.col("male")).then(1).otherwise(2)
    df = df.with_columns(seqno=seqno)
    if df["seqno"].max() > 999:
        raise RuntimeError("ID sequence overflow: too many people share a birth date and region")
    df = df.with_columns(
        id_number=with_check_char(pl.concat_str([
            pl.col("region"), pl.col("birth_date").dt.strftime("%Y%m%d"), pl.col("seqno").cast(pl.String).str.zfill(3)
        ])),
        sex=pl.when(pl.col("male")).then(pl.lit("男")).otherwise(pl.lit("女")),
    )
    return _names(df, rng)


def _names(df: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    n = df.height
    s_names = [s for s, _ in pools.SURNAMES]
    s_w = np.array([w for _, w in pools.SURNAMES])
    surname = np.array(s_names)[rng.choice(len(s_names), size=n, p=s_w / s_w.sum())]
    df = df.with_columns(surname=pl.Series(surname), r1=pl.Series(rng.integers(0, 1000, n)),
                         r2=pl.Series(rng.integers(0, 1000, n)), single=pl.Series(rng.random(n) < 0.2),
                         minority=pl.Series(rng.random(n) < 0.006))
    # within one (county, birth date, sex) cell names differ in both given-name characters
    cell = ["county_code", "birth_date", "male"]
    rank = pl.col("tie").rank("ordinal").over(cell).cast(pl.Int64)
    df = df.with_columns(k1=pl.col("r1").first().over(cell) + rank, k2=pl.col("r2").first().over(cell) + rank)

    def pick(pool: list[str], k: str) -> pl.Expr:
        return pl.col(k).mod(len(pool)).replace_strict(list(range(len(pool))), pool, return_dtype=pl.String)

    first = pl.when(pl.col("male")).then(pick(pools.MALE_FIRST, "k1")).otherwise(pick(pools.FEMALE_FIRST, "k1"))
    second = pl.when(pl.col("male")).then(pick(pools.MALE_SECOND, "k2")).otherwise(pick(pools.FEMALE_SECOND, "k2"))
    given = pl.when(pl.col("single")).then(second).otherwise(pl.concat_str([first, second]))
    minority = pl.concat_str([pick(pools.MINORITY_FIRST, "k1"), pl.lit("·"), pick(pools.MINORITY_LAST, "k2")])
    df = df.with_columns(
        name=pl.when(pl.col("minority")).then(minority).otherwise(pl.concat_str([pl.col("surname"), given]))
    )
    return df.select(
        "pid", "id_number", "name", "sex", "birth_date", "household_id", "rel", "county_code", "township",
        "village", "male",
    ).rename({"rel": "relation_to_head"})
