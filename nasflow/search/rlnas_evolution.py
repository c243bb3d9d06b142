"""RLNAS' evolutionary search (megvii-model/RLNAS, `EvolutionTrainer`: NB201
nas_bench_201/exps/algos/rlnas_evolution_search_with_angle.py; DARTS
darts_search_space/cifar10/rlnas/evolution_search/search.py).

An arch is a gene vector of op indices; the encoding depends on the space (`space.NAME`):

* nb201: 6 genes, one op (of 5) per edge (EDGES order); every vector is an arch (no repair);
* darts: 28 genes, one op (of 8, `none` included) per edge of the full 14-edge DAG of the normal cell,
  then of the reduce cell (`space.EDGE_INPUTS` order). Every drawn vector (random, mutated or crossed
  over) is first repaired cell by cell with `space.repair_edge_ops` (RLNAS' `check_cand`: each node keeps
  exactly two non-`none` edges), using the search's RandomState, so every candidate is a DARTS genotype
  (`space.from_edge_ops`). RLNAS' DARTS config: population 50, topk 10, 25 mutations + 25 crossovers.
* mobilenet: 21 genes, RLNAS' integer code per choice block (0..5 = `space.MBCONV_OPS`, -1 = skip, not in
  the first block of a stage); random and mutated genes are drawn from their own block's allowed codes, as
  RLNAS' `operations` lists (mobilenet_search_space/rlnas/evolution_search/search.py). Its FLOPs rule is a
  `constraint` (`flops_limit`): a draw over the limit is rejected before it is scored, and more are drawn.

Per generation:

1. score the current candidates (one batched `score_fn` call) and merge them into a running top-k (the
   best `topk` archs seen so far, over all generations -- elitist; ties keep the earlier arch);
2. unless it was the last generation, build the next candidates:
   * mutations: a uniform top-k parent; each gene, with probability `mutation_prob`, is redrawn uniformly
     -- nb201: from the ops *other than `none`* (the reference draws `randint(1, n_ops)`); darts: from all
     8 ops (`randint(0, n_ops)`); the new op may equal the old one -- until `n_mutations` new archs (the
     reference draws until it has them; here at most `100 * n_mutations` draws, so that a nearly exhausted
     space cannot loop forever);
   * crossovers: two uniform top-k parents (possibly the same), each gene from either with probability
     1/2; at most `n_crossovers + 1` rounds of 10 draws, so fewer than `n_crossovers` may come out;
   * random archs (uniform genes, `none` included) fill the population up to `population`.

Every arch is drawn into the search at most once: a draw (after repair) already seen (scored, or rejected
by `constraint`) is skipped, so no arch is scored twice. In nb201, as in the reference, archs without an
input->output path are not excluded (pass `constraint=space.is_connected` to exclude them); the angle
scores them 0. Initial population: `population` unique random archs. With the defaults 20 x 100 = 2,000
archs are scored.

Difference from the DARTS reference: its mutation loop only visits the first 14 genes (the normal cell), so
reduce cells change only by crossover and random draws; here every one of the 28 genes may mutate.

Randomness comes from `numpy.random.RandomState(seed)` only: same seed and scores -> same search.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from nasflow.errors import ParamsError

__all__ = ["GeneEncoding", "evolution_search", "gene_encoding"]


@dataclass(frozen=True)
class GeneEncoding:
    """How a space's archs are gene vectors.

    n_genes / n_options: vector length and options per gene (uniform random genes: `randint(n_options)`);
    mutation_values: the values a mutated gene is drawn from (uniformly);
    n_archs: the number of distinct (repaired) vectors, an upper bound for the search;
    repair(genes, rng) -> tuple: the vector made valid (None: every vector is valid, nothing is drawn);
    to_arch(genes) -> str;
    gene_values: per gene the values it may take, when they differ by gene (mobilenet); random and mutated
    genes are then drawn uniformly from their own gene's values (n_options / mutation_values unused).
    """

    n_genes: int
    n_options: int
    mutation_values: tuple[int, ...]
    n_archs: int
    repair: Callable[[tuple[int, ...], np.random.RandomState], tuple[int, ...]] | None
    to_arch: Callable[[tuple[int, ...]], str]
    gene_values: tuple[tuple[int, ...], ...] | None = None


def gene_encoding(space) -> GeneEncoding:
    """The `GeneEncoding` of a space module (chosen from `space.NAME`; nb201, darts and mobilenet)."""
    name = getattr(space, "NAME", None)
    if name == "mobilenet":
        # RLNAS' `operations`: per block the codes 0..5, then -1 (skip) where allowed
        values = tuple(tuple(range(len(space.MBCONV_OPS))) + ((-1,) if space.SKIP in space.allowed_choices(b) else ())
                       for b in range(space.N_BLOCKS))
        return GeneEncoding(n_genes=space.N_BLOCKS, n_options=len(space.OPS), mutation_values=(), n_archs=space.N_ARCHS,
                            repair=None, to_arch=lambda genes: space.from_rlnas_code(genes), gene_values=values)
    if name == "darts":
        n_edges = int(space.N_EDGES)
        # valid cells: node k picks 2 of its k inputs, each with one of the non-none ops
        per_cell = 1
        for k in space.NODES:
            per_cell *= (k * (k - 1) // 2) * (len(space.OPS) - 1) ** 2

        def repair(genes, rng):
            return space.repair_edge_ops(genes[:n_edges], rng) + space.repair_edge_ops(genes[n_edges:], rng)

        return GeneEncoding(
            n_genes=2 * n_edges, n_options=len(space.OPS), mutation_values=tuple(range(len(space.OPS))),
            n_archs=per_cell ** 2, repair=repair,
            to_arch=lambda genes: space.from_edge_ops(genes[:n_edges], genes[n_edges:]),
        )
    if name == "nb201":
        n_ops, n_genes = len(space.OPS), int(space.N_EDGES)
        none = space.OPS.index("none") if "none" in space.OPS else None
        return GeneEncoding(
            n_genes=n_genes, n_options=n_ops, mutation_values=tuple(o for o in range(n_ops) if o != none),
            n_archs=n_ops ** n_genes, repair=None,
            to_arch=lambda genes: space.format([space.OPS[g] for g in genes]),
        )
    raise ParamsError(f"evolution: unsupported search space {name!r} (supported: nb201, darts, mobilenet)")


def flops_limit(space, max_flops: float, *, width: float, input_size: int, num_classes: int) -> Callable[[str], bool]:
    """RLNAS' FLOPs rule as a `constraint` (mobilenet space): an arch passes when its FLOPs per image at
    `width` / `input_size` / `num_classes`, in RLNAS' convention (its thop and per-block look-up table,
    `flops_of(..., convention="rlnas")`), are at most `max_flops`. A limit below the smallest arch's FLOPs
    (every block at its cheapest choice) is a ParamsError: no arch could pass."""
    if getattr(space, "NAME", None) != "mobilenet":
        name = getattr(space, "NAME", space)
        raise ParamsError(f"evolution.max_flops: a FLOPs limit applies in the mobilenet space only, not {name!r}")
    from nasflow.models.mobilenet import flops_table

    table = flops_table(space.check_width(width), input_size, num_classes)
    cheapest = [min(per_block, key=per_block.get) for per_block in table.blocks]
    smallest = table.flops(cheapest, convention="rlnas")
    if max_flops < smallest:
        raise ParamsError(f"evolution.max_flops: {max_flops:.4g} FLOPs is below the smallest arch's {smallest:,} "
                          f"(at width {width:g}, {input_size} px, {num_classes} classes): no arch fits")

    def within_flops(arch: str) -> bool:
        return table.flops(arch, convention="rlnas") <= max_flops

    return within_flops


def evolution_search(
    score_fn: Callable[[list[str]], Sequence[float]],
    *,
    space,
    seed: int,
    population: int = 100,
    topk: int = 30,
    n_mutations: int = 50,
    n_crossovers: int = 50,
    mutation_prob: float = 0.1,
    generations: int = 20,
    constraint: Callable[[str], bool] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Run the search; returns {"best", "best_score", "topk", "history", "n_scored", "params"}.

    score_fn: arch strings -> scores (larger is better), called once per generation.
    space:    the search space module (nb201 or darts, chosen by `space.NAME`; see `gene_encoding`).
    history:  one entry per generation: {"generation", "archs": [{"arch", "score"}...] (the candidates
              scored in that generation, in order), "best", "best_score" (of the running top-k)}.
    log:      called with one line per generation (archs scored, the best so far); None is silent.
    """
    for name, v, lo in (("population", population, 1), ("topk", topk, 1), ("generations", generations, 1),
                        ("n_mutations", n_mutations, 0), ("n_crossovers", n_crossovers, 0)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ParamsError(f"evolution.{name}: expected an integer >= {lo}, got {v!r}")
    if not 0.0 <= mutation_prob <= 1.0:
        raise ParamsError(f"evolution.mutation_prob: expected a probability, got {mutation_prob!r}")

    enc = gene_encoding(space)
    rng = np.random.RandomState(seed)
    n_ops, n_genes = enc.n_options, enc.n_genes
    mut_ops = list(enc.mutation_values)
    n_archs = enc.n_archs

    seen: set[tuple[int, ...]] = set()   # every gene vector drawn so far (the reference's vis_dict)
    scores: dict[tuple[int, ...], float] = {}
    top: list[tuple[int, ...]] = []

    def to_arch(genes) -> str:
        return enc.to_arch(genes)

    def accept(genes: tuple[int, ...]) -> tuple[int, ...] | None:
        """The (repaired) `genes` if this is its first draw and it passes the constraint, else None (marks
        it seen either way)."""
        if enc.repair is not None:
            genes = tuple(int(g) for g in enc.repair(genes, rng))
        if genes in seen:
            return None
        seen.add(genes)
        return genes if constraint is None or bool(constraint(to_arch(genes))) else None

    def random_genes() -> tuple[int, ...]:
        if enc.gene_values is not None:
            return tuple(vals[rng.randint(len(vals))] for vals in enc.gene_values)
        return tuple(int(g) for g in rng.randint(n_ops, size=n_genes))

    def random_archs(n: int) -> list[tuple[int, ...]]:
        out: list[tuple[int, ...]] = []
        # a constraint can reject most draws (a tight FLOPs limit): stop after 1000 per arch, as the reference
        for _ in range(1000 * n):
            if len(out) >= n or len(seen) >= n_archs:
                break
            genes = accept(random_genes())
            if genes is not None:
                out.append(genes)
        return out

    def pick_parent() -> tuple[int, ...]:
        return top[rng.randint(len(top))]

    def mutations() -> list[tuple[int, ...]]:
        out: list[tuple[int, ...]] = []
        for _ in range(100 * n_mutations):
            if len(out) >= n_mutations:
                break
            genes = list(pick_parent())
            for i in range(n_genes):
                if rng.random_sample() < mutation_prob:
                    vals = mut_ops if enc.gene_values is None else enc.gene_values[i]
                    genes[i] = vals[rng.randint(len(vals))]
            genes = accept(tuple(genes))
            if genes is not None:
                out.append(genes)
        return out

    def crossovers() -> list[tuple[int, ...]]:
        out: list[tuple[int, ...]] = []
        for _ in range(n_crossovers + 1):
            if len(out) >= n_crossovers:
                break
            for _ in range(10):
                p1, p2 = pick_parent(), pick_parent()
                genes = tuple(a if rng.randint(2) == 0 else b for a, b in zip(p1, p2))
                if len(out) < n_crossovers:
                    genes = accept(genes)
                    if genes is not None:
                        out.append(genes)
        return out

    history: list[dict] = []
    candidates = random_archs(population)
    for gen in range(generations):
        if candidates:
            values = list(score_fn([to_arch(g) for g in candidates]))
            if len(values) != len(candidates):
                raise ValueError(f"score_fn returned {len(values)} scores for {len(candidates)} archs")
            for g, v in zip(candidates, values):
                scores[g] = float(v)
            top = sorted(top + candidates, key=lambda g: scores[g], reverse=True)[:topk]
        history.append({
            "generation": gen,
            "archs": [{"arch": to_arch(g), "score": scores[g]} for g in candidates],
            "best": to_arch(top[0]) if top else None,
            "best_score": scores[top[0]] if top else None,
        })
        if log is not None:
            log(f"generation {gen + 1}/{generations}: {len(candidates)} archs scored ({len(scores)} in all)  "
                + (f"best so far {scores[top[0]]:.4g}  {to_arch(top[0])}" if top else "nothing scored"))
        if gen + 1 == generations or not top:
            break
        mut = mutations()
        cross = crossovers()
        candidates = mut + cross + random_archs(population - len(mut) - len(cross))

    return {
        "best": to_arch(top[0]) if top else None,
        "best_score": scores[top[0]] if top else None,
        "topk": [{"arch": to_arch(g), "score": scores[g]} for g in top],
        "history": history,
        "n_scored": len(scores),
        "params": {"seed": seed, "population": population, "topk": topk, "n_mutations": n_mutations,
                   "n_crossovers": n_crossovers, "mutation_prob": mutation_prob,
                   "generations": generations, "constraint": getattr(constraint, "__name__", None)},
    }
