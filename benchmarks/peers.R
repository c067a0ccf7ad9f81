# The R peers of benchmarks/peers.py on one hidden split: CLVTools' Pareto/NBD, BG/NBD and
# GG/NBD, and BTYDplus' MBG/CNBD-k (k chosen by likelihood), fitted on the log to a cutoff and
# forecasting each customer's repeat purchases in the holdout after it.
#
#   Rscript benchmarks/peers.R LOG.csv CUTOFF END OUT.csv
#
# LOG.csv: customer_id, date (YYYY-MM-DD), amount; one row per customer-day (clv's cleaned log,
# cut at END). Writes OUT.csv: customer_id and one forecast column per model that fitted (a
# model that fails is left out, with its error on stderr). Time is in weeks, as in clv.
args <- commandArgs(trailingOnly = TRUE)
stopifnot(length(args) == 4)
log <- read.csv(args[1], colClasses = c("character", "character", "numeric"))
cutoff <- as.Date(args[2])
end <- as.Date(args[3])
log$date <- as.Date(log$date)
horizon <- as.numeric(end - cutoff) / 7
out <- data.frame(customer_id = sort(unique(log$customer_id[log$date <= cutoff])))

attempt <- function(name, expr) {
  forecast <- tryCatch(expr, error = function(e) {
    message(name, " failed: ", conditionMessage(e))
    NULL
  })
  if (!is.null(forecast)) out[[name]] <<- forecast[out$customer_id]
}

if (requireNamespace("CLVTools", quietly = TRUE)) {
  suppressPackageStartupMessages(library(CLVTools))
  data <- clvdata(
    data.frame(Id = log$customer_id, Date = log$date, Price = log$amount),
    date.format = "ymd", time.unit = "weeks", estimation.split = cutoff,
    name.id = "Id", name.date = "Date", name.price = "Price"
  )
  for (model in c("pnbd", "bgnbd", "ggomnbd")) {
    attempt(paste0("clvtools_", model), {
      fitted <- suppressMessages(get(model)(data, verbose = FALSE))
      p <- predict(fitted, prediction.end = end, predict.spending = FALSE, verbose = FALSE)
      setNames(p$CET, as.character(p$Id))
    })
  }
} else {
  message("CLVTools is not installed: its columns are left out")
}

if (requireNamespace("BTYDplus", quietly = TRUE)) {
  suppressPackageStartupMessages(library(BTYDplus))
  elog <- data.frame(cust = log$customer_id, date = log$date, sales = log$amount)
  cbs <- elog2cbs(elog[elog$date <= end, ], units = "week", T.cal = cutoff)
  attempt("btydplus_mbgcnbd", {
    params <- mbgcnbd.EstimateParameters(cbs)
    message("BTYDplus MBG/CNBD-k: k = ", params[1])
    cet <- mbgcnbd.ConditionalExpectedTransactions(params, horizon, cbs$x, cbs$t.x, cbs$T.cal)
    setNames(cet, as.character(cbs$cust))
  })
} else {
  message("BTYDplus is not installed: its column is left out")
}

write.csv(out, args[4], row.names = FALSE)
