"""Constants shared by every backend (mirrored in csrc/include/constants.h)."""

ALPHA_MAX = 0.99  # alpha = min(ALPHA_MAX, opacity * exp(-sigma)), as in the 3DGS paper
ALPHA_MIN = 1.0 / 255.0  # contributions below this are skipped
T_MIN = 1e-4  # a pixel stops once its transmittance would fall to this
RADIUS_SIGMA = 3.33  # extent of a Gaussian in standard deviations (upper bound)
FOV_CLAMP = 1.3  # projection Jacobian evaluated within 1.3x the field of view
SH_C0 = 0.28209479177387814
RENDER_MODES = ("RGB", "D", "ED", "RGB+D", "RGB+ED")
