"""RLNAS' evolutionary search over the NB201 cell (megvii-model/RLNAS,
nas_bench_201/exps/algos/rlnas_evolution_search_with_angle.py, `EvolutionTrainer`).

An arch is a gene vector: one op index per edge (EDGES order). Per generation:

1. score the current candidates (one batched `score_fn` call) and merge them into a running top-k (the
   best `topk` archs seen so far, over all generations -- elitist; ties keep the earlier arch);
2. unless it was the last generation, build the next candidates:
   * mutations: a uniform top-k parent; each gene, with probability `mutation_prob`, is redrawn uniformly
     from the ops *other than `none`* (the reference draws `randint(1, n_ops)`; the new op may equal the
     old one), until `n_mutations` new archs (the reference draws until it has them; here at most
     `100 * n_mutations` draws, so that a nearly exhausted space cannot loop forever);
   * crossovers: two uniform top-k parents (possibly the same), each gene from either with probability
     1/2; at most `n_crossovers + 1` rounds of 10 draws, so fewer than `n_crossovers` may come out;
   * random archs (uniform genes, `none` included) fill the population up to `population`.

Every arch is drawn into the search at most once: a draw already seen (scored, or rejected by
`constraint`) is skipped, so no arch is scored twice. As in the reference, archs without an input->output
path are not excluded (pass `constraint=space.is_connected` to exclude them); the angle scores them 0.
Initial population: `population` unique random archs. With the defaults 20 x 100 = 2,000 archs are scored.

Randomness comes from `numpy.random.RandomState(seed)` only: same seed and scores -> same search.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from nasflow.errors import ParamsError

__all__ = ["evolution_search"]


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
) -> dict:
    """Run the search; returns {"best", "best_score", "topk", "history", "n_scored", "params"}.

    score_fn: arch strings -> scores (larger is better), called once per generation.
    space:    the search space module (uses OPS, N_EDGES, format).
    history:  one entry per generation: {"generation", "archs": [{"arch", "score"}...] (the candidates
              scored in that generation, in order), "best", "best_score" (of the running top-k)}.
    """
    for name, v, lo in (("population", population, 1), ("topk", topk, 1), ("generations", generations, 1),
                        ("n_mutations", n_mutations, 0), ("n_crossovers", n_crossovers, 0)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ParamsError(f"evolution.{name}: expected an integer >= {lo}, got {v!r}")
    if not 0.0 <= mutation_prob <= 1.0:
        raise ParamsError(f"evolution.mutation_prob: expected a probability, got {mutation_prob!r}")

    rng = np.random.RandomState(seed)
    n_ops, n_genes = len(space.OPS), int(space.N_EDGES)
    none = space.OPS.index("none") if "none" in space.OPS else None
    mut_ops = [o for o in range(n_ops) if o != none]
    n_archs = n_ops ** n_genes

    seen: set[tuple[int, ...]] = set()   # every gene vector drawn so far (the reference's vis_dict)
    scores: dict[tuple[int, ...], float] = {}
    top: list[tuple[int, ...]] = []

    def to_arch(genes) -> str:
        return space.format([space.OPS[g] for g in genes])

    def accept(genes: tuple[int, ...]) -> bool:
        """First draw of `genes` that passes the constraint (marks it seen either way)."""
        if genes in seen:
            return False
        seen.add(genes)
        return constraint is None or bool(constraint(to_arch(genes)))

    def random_archs(n: int) -> list[tuple[int, ...]]:
        out: list[tuple[int, ...]] = []
        while len(out) < n and len(seen) < n_archs:
            genes = tuple(int(g) for g in rng.randint(n_ops, size=n_genes))
            if accept(genes):
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
                    genes[i] = mut_ops[rng.randint(len(mut_ops))]
            genes = tuple(genes)
            if accept(genes):
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
                if len(out) < n_crossovers and accept(genes):
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
