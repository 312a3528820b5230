"""Binary cross entropy at the edges, against values recorded from PyTorch 2.13.0 (CPU).

PyTorch clamps BCE's logs at -100 and gives the loss its own backward,
(x - y) / max((1 - x) x, 1e-12): finite, with PyTorch's signs, where x is exactly 0 or 1
(a sigmoid that rounds to 0 on a VAE's background pixels). BCE with logits takes the
gradient sigmoid(x) - y, exact at logits of any size.
"""
import numpy as np
import pytest

import fusegrad as torch
import fusegrad.nn.functional as F

BCE_X = [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.25, 0.25, 0.25, 0.7, 0.7, 0.7]
BCE_TARGET = [0.0, 0.3, 1.0, 0.0, 0.3, 1.0, 0.0, 0.3, 1.0, 0.0, 0.3, 1.0]
BCE_WEIGHT = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 2.75, 3.0, 3.25]
# (dtype, reduction, weighted) -> (loss, d loss / d x), from torch 2.13.0 CPU
BCE_TORCH = {
    ('float32', 'mean', False): (25.4001407623291,
        [0.0, -25000001536.0, -83333332992.0, 83333332992.0, 58333331456.0, 0.0, 0.1111111119389534, -0.022222228348255157, -0.3333333432674408, 0.277777761220932, 0.1587301343679428, -0.1190476194024086]),
    ('float32', 'mean', True): (30.437454223632812,
        [0.0, -18750001152.0, -83333332992.0, 104166662144.0, 87499997184.0, 0.0, 0.2222222238779068, -0.050000011920928955, -0.8333333134651184, 0.7638888359069824, 0.4761904180049896, -0.3869047462940216]),
    ('float32', 'sum', False): (304.80169677734375,
        [0.0, -300000018432.0, -999999995904.0, 999999995904.0, 699999977472.0, 0.0, 1.3333333730697632, -0.2666667401790619, -4.0, 3.3333332538604736, 1.9047616720199585, -1.4285714626312256]),
    ('float32', 'sum', True): (365.24945068359375,
        [0.0, -225000013824.0, -999999995904.0, 1249999978496.0, 1049999966208.0, 0.0, 2.6666667461395264, -0.6000001430511475, -10.0, 9.166666030883789, 5.714284896850586, -4.642857074737549]),
    ('float32', 'none', False): ([0.0, 30.000001907348633, 100.0, 100.0, 70.0, -0.0, 0.28768205642700195, 0.6172657608985901, 1.3862943649291992, 1.2039728164672852, 0.949783444404602, 0.3566749691963196],
        [0.0, -300000018432.0, -999999995904.0, 999999995904.0, 699999977472.0, 0.0, 1.3333333730697632, -0.2666667401790619, -4.0, 3.3333332538604736, 1.9047616720199585, -1.4285714626312256]),
    ('float32', 'none', True): ([0.0, 22.500001907348633, 100.0, 125.0, 105.0, -0.0, 0.5753641128540039, 1.3888479471206665, 3.465735912322998, 3.310925245285034, 2.8493504524230957, 1.1591936349868774],
        [0.0, -225000013824.0, -999999995904.0, 1249999978496.0, 1049999966208.0, 0.0, 2.6666667461395264, -0.6000001430511475, -10.0, 9.166666030883789, 5.714284896850586, -4.642857074737549]),
    ('float64', 'mean', False): (25.40013944892486,
        [0.0, -25000000099.89507, -83333333666.31691, 83333333666.31691, 58333333566.42182, 0.0, 0.1111111111111111, -0.022222222222222216, -0.3333333333333333, 0.27777777777777773, 0.1587301587301587, -0.11904761904761905]),
    ('float64', 'mean', True): (30.43745142699144,
        [0.0, -18750000074.921303, -83333333666.31691, 104166667082.89613, 87500000349.63274, 0.0, 0.2222222222222222, -0.04999999999999999, -0.8333333333333334, 0.7638888888888887, 0.4761904761904761, -0.3869047619047619]),
    ('float64', 'sum', False): (304.80167338709833,
        [0.0, -300000001198.74084, -1000000003995.8029, 1000000003995.8029, 700000002797.0619, 0.0, 1.3333333333333333, -0.2666666666666666, -4.0, 3.3333333333333326, 1.9047619047619044, -1.4285714285714286]),
    ('float64', 'sum', True): (365.2494171238973,
        [0.0, -225000000899.05563, -1000000003995.8029, 1250000004994.7537, 1050000004195.5928, 0.0, 2.6666666666666665, -0.5999999999999999, -10.0, 9.166666666666664, 5.7142857142857135, -4.642857142857143]),
    ('float64', 'none', False): ([0.0, 30.0, 100.0, 100.0, 70.0, -0.0, 0.2876820724517809, 0.6172657590522138, 1.3862943611198906, 1.203972804325936, 0.9497834462097748, 0.35667494393873245],
        [0.0, -300000001198.74084, -1000000003995.8029, 1000000003995.8029, 700000002797.0619, 0.0, 1.3333333333333333, -0.2666666666666666, -4.0, 3.3333333333333326, 1.9047619047619044, -1.4285714285714286]),
    ('float64', 'none', True): ([0.0, 22.5, 100.0, 125.0, 105.0, -0.0, 0.5753641449035618, 1.388847957867481, 3.4657359027997265, 3.3109252118963237, 2.8493503386293244, 1.1591935678008805],
        [0.0, -225000000899.05563, -1000000003995.8029, 1250000004994.7537, 1050000004195.5928, 0.0, 2.6666666666666665, -0.5999999999999999, -10.0, 9.166666666666664, 5.7142857142857135, -4.642857142857143]),
}
LOGITS = [-10000.0, -10000.0, -10000.0, -104.0, -104.0, -104.0, -20.0, -20.0, -20.0, 0.0, 0.0, 0.0, 20.0, 20.0, 20.0, 104.0, 104.0, 104.0, 10000.0, 10000.0, 10000.0]
LOGITS_TARGET = [0.0, 0.3, 1.0, 0.0, 0.3, 1.0, 0.0, 0.3, 1.0, 0.0, 0.3, 1.0, 0.0, 0.3, 1.0, 0.0, 0.3, 1.0, 0.0, 0.3, 1.0]
# (dtype, pos_weight) -> (elementwise loss, d sum / d logit), from torch 2.13.0 CPU
LOGITS_TORCH = {
    ('float32', None): ([0.0, 3000.0, 10000.0, 0.0, 31.20000457763672, 104.0, 0.0, 6.0, 20.0, 0.6931471824645996, 0.6931471824645996, 0.6931471824645996, 20.0, 14.0, 2.06115369216775e-09, 104.0, 72.79999542236328, 0.0, 10000.0, 7000.0, 0.0],
        [0.0, -0.30000001192092896, -1.0, 0.0, -0.30000001192092896, -1.0, 2.06115369216775e-09, -0.30000001192092896, -1.0, 0.5, 0.19999998807907104, -0.5, 1.0, 0.699999988079071, 0.0, 1.0, 0.699999988079071, 0.0, 1.0, 0.699999988079071, 0.0]),
    ('float32', 3.0): ([0.0, 9000.0, 30000.0, 0.0, 93.60001373291016, 312.0, 0.0, 18.0, 60.0, 0.6931471824645996, 1.1090354919433594, 2.079441547393799, 20.0, 14.0, 6.1834608544586445e-09, 104.0, 72.79999542236328, 0.0, 10000.0, 7000.0, 0.0],
        [0.0, -0.9000000357627869, -3.0, 0.0, -0.9000000357627869, -3.0, 2.06115369216775e-09, -0.9000000357627869, -3.0, 0.5, -0.09999996423721313, -1.5, 1.0, 0.7000001072883606, 0.0, 1.0, 0.7000001072883606, 0.0, 1.0, 0.7000001072883606, 0.0]),
    ('float64', None): ([0.0, 3000.0, 10000.0, 0.0, 31.200000000000003, 104.0, 2.061153026033935e-09, 6.000000002061153, 20.000000002061153, 0.6931471805599453, 0.6931471805599453, 0.6931471805599453, 20.000000002061153, 14.000000002061153, 2.061153620314381e-09, 104.0, 72.8, 6.813556821545298e-46, 10000.0, 7000.0, 0.0],
        [0.0, -0.3, -1.0, 6.813556821545298e-46, -0.3, -1.0, 2.0611536181902037e-09, -0.29999999793884635, -0.9999999979388464, 0.5, 0.2, -0.5, 0.9999999979388463, 0.6999999979388463, -2.06115369216775e-09, 1.0, 0.7, 0.0, 1.0, 0.7, 0.0]),
    ('float64', 3.0): ([0.0, 9000.0, 30000.0, 0.0, 93.60000000000001, 312.0, 2.061153026033935e-09, 18.00000000329785, 60.000000006183456, 0.6931471805599453, 1.1090354888959124, 2.0794415416798357, 20.000000002061153, 14.000000003297846, 6.183460860943142e-09, 104.0, 72.8, 2.0440670464635894e-45, 10000.0, 7000.0, 0.0],
        [0.0, -0.8999999999999999, -3.0, 6.813556821545298e-46, -0.8999999999999999, -3.0, 2.0611536181902037e-09, -0.8999999967021541, -2.999999993816539, 0.5, -0.09999999999999998, -1.5, 0.9999999979388463, 0.699999996702154, -6.1834608544586445e-09, 1.0, 0.7, 0.0, 1.0, 0.7, 0.0]),
}

TOLERANCE = {"float32": 2e-6, "float64": 1e-12}


def bce(dtype, reduction, weighted):
    dt = getattr(torch, dtype)
    x = torch.tensor(BCE_X, dtype=dt, requires_grad=True)
    weight = torch.tensor(BCE_WEIGHT, dtype=dt) if weighted else None
    loss = F.binary_cross_entropy(x, torch.tensor(BCE_TARGET, dtype=dt), weight=weight, reduction=reduction)
    loss.sum().backward()
    return loss.detach().numpy(), x.grad.numpy()


@pytest.mark.parametrize("dtype, reduction, weighted", sorted(BCE_TORCH))
def test_bce_loss_and_gradient_match_pytorch_at_0_1_and_inside(dtype, reduction, weighted):
    loss, grad = bce(dtype, reduction, weighted)
    want_loss, want_grad = BCE_TORCH[dtype, reduction, weighted]
    assert loss.dtype == np.dtype(dtype) and grad.dtype == np.dtype(dtype)
    np.testing.assert_allclose(loss, want_loss, rtol=TOLERANCE[dtype], atol=0)
    np.testing.assert_allclose(grad, want_grad, rtol=TOLERANCE[dtype], atol=0)


@pytest.mark.parametrize("dtype, logit", [("float32", -104.0), ("float64", -800.0)])
@pytest.mark.parametrize("target", [0.0, 0.3, 1.0])
def test_bce_of_a_sigmoid_that_rounds_to_zero_has_zero_gradient(dtype, logit, target):
    dt = getattr(torch, dtype)
    z = torch.tensor([logit], dtype=dt, requires_grad=True)
    loss = F.binary_cross_entropy(torch.sigmoid(z), torch.tensor([target], dtype=dt))
    loss.backward()
    assert loss.item() == pytest.approx(100.0 * target)
    assert z.grad.numpy().tolist() == [0.0]


def test_bce_target_gradient_inside_is_minus_logit():
    x = torch.tensor([0.25, 0.7], dtype=torch.float64)
    y = torch.tensor([0.3, 0.3], dtype=torch.float64, requires_grad=True)
    F.binary_cross_entropy(x, y, reduction="sum").backward()
    np.testing.assert_allclose(y.grad.numpy(), -np.log(np.array([0.25, 0.7]) / np.array([0.75, 0.3])), rtol=1e-12)


def test_bce_weight_cannot_require_grad():
    x, y = torch.tensor([0.5]), torch.tensor([1.0])
    with pytest.raises(RuntimeError, match="not differentiable with respect to argument 'weight'"):
        F.binary_cross_entropy(x, y, weight=torch.tensor([2.0], requires_grad=True))


def test_bce_module_takes_the_same_gradient():
    x = torch.tensor([0.0, 1.0], requires_grad=True)
    torch.nn.BCELoss(reduction="sum")(x, torch.tensor([0.3, 0.3])).backward()
    np.testing.assert_allclose(x.grad.numpy(), [-3.0e11, 7.0e11], rtol=1e-6)


@pytest.mark.parametrize("dtype, pos_weight", sorted(LOGITS_TORCH, key=str))
def test_bce_with_logits_matches_pytorch_at_extreme_logits(dtype, pos_weight):
    dt = getattr(torch, dtype)
    z = torch.tensor(LOGITS, dtype=dt, requires_grad=True)
    pw = None if pos_weight is None else torch.tensor(pos_weight, dtype=dt)
    loss = F.binary_cross_entropy_with_logits(z, torch.tensor(LOGITS_TARGET, dtype=dt), reduction="none",
                                              pos_weight=pw)
    loss.sum().backward()
    want_loss, want_grad = LOGITS_TORCH[dtype, pos_weight]
    tol = TOLERANCE[dtype]
    np.testing.assert_allclose(loss.detach().numpy(), want_loss, rtol=tol, atol=0)
    np.testing.assert_allclose(z.grad.numpy(), want_grad, rtol=tol, atol=0)
