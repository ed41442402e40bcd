# salve-script: reboot
# Schedule a restart a few seconds ahead, so this answer reaches the controller before the
# connection drops (contract: RebootRequest -> RebootAnswer). The answer carries the boot id
# before the restart; the controller then waits for `boot_id` to answer a different one.

$delay = 5
if ($null -ne $SalveArgs.delay_seconds) { $delay = [int] $SalveArgs.delay_seconds }
$os = Get-CimInstance -ClassName Win32_OperatingSystem
$before = $os.LastBootUpTime.ToUniversalTime().ToString('yyyy-MM-ddTHH:mm:ssZ')
Write-Output "Restarting $env:COMPUTERNAME in $delay seconds"
& "$env:SystemRoot\System32\shutdown.exe" /r /t $delay /d p:2:17 /c 'salve: restart after Exchange update'
$scheduled = ($LASTEXITCODE -eq 0)
$answer = [ordered]@{
    boot_id_before = $before
    scheduled      = $scheduled
}
Write-Output ('##salve-result## ' + (ConvertTo-Json -InputObject $answer -Depth 8 -Compress))
if (-not $scheduled) {
    [Console]::Error.WriteLine("shutdown.exe exited with $LASTEXITCODE; no restart was scheduled")
    exit 1
}
