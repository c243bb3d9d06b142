"""Parameter/FLOP counts against NAS-Bench-201's published numbers, and the network's shapes."""

import pytest
import torch
from torch import nn

from nasflow.counting import count_flops, count_params
from nasflow.models import nb201 as nb201_net
from nasflow.models.nb201 import InferCell, TinyNetwork
from nasflow.models.ops import ReLUConvBN, Zero
from nasflow.spaces import nb201

INDEX0 = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"


@pytest.mark.parametrize(
    "arch, flops, params",
    [
        (INDEX0, 15_647_370, 129_306),
        (nb201.format(["nor_conv_3x3"] * 6), 220_119_690, 1_531_546),  # 220.120 M / 1.531546 M
        (nb201.format(["skip_connect"] * 6), 7_783_050, 73_306),  # 7.783 M / 0.073306 M
        (nb201.enumerate_all()[6111], 153_272_970, 1_073_466),  # best CIFAR-10 cell: 153.273 M / 1.073466 M
    ],
)
def test_cifar10_counts_match_benchmark(arch, flops, params):
    model = nb201_net.build_network(arch, channels=16, depth=5, num_classes=10)
    assert count_params(model) == params
    assert count_flops(model, (3, 32, 32)) == flops


def test_reference_numbers_to_three_decimals():
    assert round(220_119_690 / 1e6, 3) == 220.120
    assert round(7_783_050 / 1e6, 3) == 7.783
    assert round(153_272_970 / 1e6, 3) == 153.273


def test_count_flops_conventions():
    # Conv: k*k*Cin*Cout per output position (+ Cout with a bias); Linear: in*out + out; pooling free.
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=True), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 5)
    )
    model.train()
    assert count_flops(model, (3, 8, 8)) == 64 * (27 * 4 + 4) + (64 * 5 + 5)
    assert model.training  # mode restored
    assert count_params(model) == 3 * 4 * 9 + 4 + 64 * 5 + 5


def test_none_edges_cost_nothing():
    all_none = nb201_net.build_network(nb201.format(["none"] * 6))
    all_skip = nb201_net.build_network(nb201.format(["skip_connect"] * 6))
    assert count_flops(all_none) == count_flops(all_skip)
    assert count_params(all_none) == count_params(all_skip)


@pytest.mark.parametrize("size", [8, 16, 32])
def test_forward_shapes(size):
    model = TinyNetwork(INDEX0, C=8, N=1, num_classes=100)
    out = model(torch.randn(2, 3, size, size))
    assert out.shape == (2, 100)


def test_all_none_cell_still_outputs_a_tensor():
    model = TinyNetwork(nb201.format(["none"] * 6), C=4, N=1, num_classes=3)
    out = model(torch.randn(2, 3, 16, 16))
    assert out.shape == (2, 3) and torch.isfinite(out).all()
    cell = model.infer_cells()[0]
    x = torch.randn(2, 4, 8, 8)
    assert torch.equal(cell(x), torch.zeros_like(x))


def test_module_structure_for_supernets():
    arch = nb201.enumerate_all()[6111]
    model = TinyNetwork(arch, C=8, N=2, num_classes=10, affine=False)
    cells = model.infer_cells()
    assert len(cells) == 6 and len(model.reduction_blocks()) == 2
    cell = cells[0]
    assert isinstance(cell, InferCell) and len(cell.edges) == 6
    for edge, op in zip(cell.edges, nb201.parse(arch)):
        if op.startswith("nor_conv"):
            assert isinstance(edge, ReLUConvBN)
            assert edge.conv.kernel_size == ((3, 3) if op.endswith("3x3") else (1, 1))
            assert not edge.bn.affine
    assert isinstance(TinyNetwork(nb201.format(["none"] * 6), C=4, N=1).infer_cells()[0].edges[0], Zero)
