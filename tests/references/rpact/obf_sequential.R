# Reference operating characteristics of a group-sequential design with an O'Brien-Fleming
# efficacy boundary (rpact), for tests/power/test_sequential.py.
#
#   Rscript tests/references/rpact/obf_sequential.R [OUT.csv]   (default: beside this script)
#
# Design: one-sided alpha 0.025, classical O'Brien-Fleming (typeOfDesign "OF"), looks at
# information fractions 0.5, 0.75, 1; a non-binding futility bound z = 0 at the two interims
# (stop when the estimate points the wrong way). Outcome: the log of a patient's negative-binomial
# treatment total on the normal approximation (delta method): mean cramps mu0 = 0.9 / day x 56 days
# under placebo, size k = 3, rate ratio 0.85 under the alternative, so the per-patient SD of the
# log-mean scale is sqrt(mean over arms of (1 / mu + 1 / k)); 200 patients per arm at the end.
suppressPackageStartupMessages(library(rpact))
args <- commandArgs(trailingOnly = TRUE)
script_dir <- dirname(normalizePath(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))))
out <- if (length(args) >= 1) args[[1]] else file.path(script_dir, "obf_sequential.csv")

fractions <- c(0.5, 0.75, 1)
n_per_arm <- 200
mu0 <- 0.9 * 56
k <- 3
rr <- 0.85
sd_unit <- sqrt(mean(c(1 / mu0 + 1 / k, 1 / (mu0 * rr) + 1 / k)))

design <- getDesignGroupSequential(
  kMax = 3, alpha = 0.025, sided = 1, typeOfDesign = "OF", informationRates = fractions,
  futilityBounds = c(0, 0), bindingFutility = FALSE
)
rows <- list()
add <- function(scenario, quantity, look, value) {
  rows[[length(rows) + 1]] <<- data.frame(
    scenario = scenario, quantity = quantity, look = look, value = value
  )
}
for (j in seq_along(fractions)) {
  add("design", "critical_z", j, design$criticalValues[j])
  add("design", "information_fraction", j, fractions[j])
}
add("design", "futility_z", 1:2, design$futilityBounds)
add("design", "n_per_arm", NA, n_per_arm)
add("design", "mu0", NA, mu0)
add("design", "k", NA, k)
add("design", "sd_unit", NA, sd_unit)
for (scenario in c("null", "alternative")) {
  effect <- if (scenario == "null") 0 else -log(rr)
  p <- getPowerMeans(
    design, groups = 2, normalApproximation = TRUE, alternative = effect, stDev = sd_unit,
    maxNumberOfSubjects = 2 * n_per_arm, allocationRatioPlanned = 1
  )
  add(scenario, "rr", NA, exp(-effect))
  add(scenario, "reject", NA, p$overallReject)
  add(scenario, "reject_at_look", 1:3, p$rejectPerStage[, 1])
  add(scenario, "futility_at_look", 1:2, p$futilityPerStage[, 1])
  add(scenario, "expected_n_total", NA, p$expectedNumberOfSubjects)
}
result <- do.call(rbind, rows)
result$value <- signif(result$value, 10)
write.csv(result, out, row.names = FALSE, quote = FALSE)
cat("wrote", out, "with rpact", as.character(packageVersion("rpact")), "\n")
