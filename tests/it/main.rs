mod exchange;
mod exchange_cli;
