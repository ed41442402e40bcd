# salve-script: job_poll
# Read a detached step's state and the output it wrote since an offset (contract:
# JobPollRequest / JobPollAnswer). Reads the task, its info and its output.log (opened for
# reading while the task may still write to it). While the task runs, only whole lines are
# returned; a line still being written is read next time. With remove_finished (a read's task,
# which salve started itself), a finished task whose output this answer completes is
# unregistered and its folder deleted: the only change this script makes, and only to salve's
# own task.

$taskPath = '\salve\'
$job = [string] $SalveArgs.job
if ($job -notmatch '^salve-[A-Za-z0-9_.-]+$') { throw "job_poll: invalid job id '$job'" }
$dir = Join-Path (Join-Path $env:ProgramData 'salve\jobs') $job
$offset = [int64] $SalveArgs.offset
$answer = [ordered]@{ job = $job; state = 'missing'; output = ''; next_offset = $offset; exit_code = $null; removed = $false }
$length = [int64] 0

$task = Get-ScheduledTask -TaskPath $taskPath -TaskName $job -ErrorAction SilentlyContinue
if ($task) {
    $info = Get-ScheduledTaskInfo -TaskPath $taskPath -TaskName $job
    if ([string] $task.State -eq 'Running' -or $info.LastTaskResult -in @(267009, 267011)) {
        $answer.state = 'running'
    } else {
        $answer.state = 'finished'
        # LastTaskResult is a UInt32; exit codes like 0xC000013A are negative Int32s.
        $answer.exit_code = [BitConverter]::ToInt32([BitConverter]::GetBytes([uint32] $info.LastTaskResult), 0)
    }
}

$log = Join-Path $dir 'output.log'
if ($answer.state -ne 'missing' -and (Test-Path -LiteralPath $log)) {
    $stream = [IO.File]::Open($log, [IO.FileMode]::Open, [IO.FileAccess]::Read, [IO.FileShare]::ReadWrite)
    try {
        $length = $stream.Length
        $available = [Math]::Max([int64] 0, $stream.Length - $offset)
        $size = [int] [Math]::Min($available, [int64] 4194304)  # 4 MB per look
        $buffer = New-Object -TypeName 'byte[]' -ArgumentList $size
        $null = $stream.Seek($offset, [IO.SeekOrigin]::Begin)
        $read = $stream.Read($buffer, 0, $buffer.Length)
        $take = $read
        if ($answer.state -eq 'running' -or $read -lt $available) {
            $take = 0
            if ($read -gt 0) { $take = [Array]::LastIndexOf($buffer, [byte] 10, $read - 1) + 1 }
        }
        $answer.output = [System.Text.Encoding]::UTF8.GetString($buffer, 0, $take)
        $answer.next_offset = $offset + $take
    } finally {
        $stream.Dispose()
    }
}
if ($SalveArgs.remove_finished -and $answer.state -eq 'finished' -and $answer.next_offset -ge $length) {
    Unregister-ScheduledTask -TaskPath $taskPath -TaskName $job -Confirm:$false
    if (Test-Path -LiteralPath $dir) { Remove-Item -LiteralPath $dir -Recurse -Force }
    $answer.removed = $true
}
Write-Output ('##salve-result## ' + (ConvertTo-Json -InputObject $answer -Depth 8 -Compress))
