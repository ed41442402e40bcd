mod report;
mod report_files;
mod report_json;
