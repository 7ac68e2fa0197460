"""The estimators an ipmpi run can write, by the suffix of their variables
(I_XT_<name>, I_TY_<name>), in the order a figure's default is chosen:
the binned plug-in estimates, the KDE bounds, then the Miller-Madow values."""

ESTIMATORS = ("pooled", "sampled", "simple", "kde_upper", "kde_lower", "pooled_mm", "sampled_mm",
              "simple_mm")
