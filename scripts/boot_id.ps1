# salve-script: boot_id
# The host's boot id (last boot time, UTC) and uptime (contract: BootIdAnswer). The controller
# polls this after a restart and treats the host as back only once the id has changed.

$os = Get-CimInstance -ClassName Win32_OperatingSystem
$boot = $os.LastBootUpTime.ToUniversalTime()
$answer = [ordered]@{
    boot_id        = $boot.ToString('yyyy-MM-ddTHH:mm:ssZ')
    uptime_seconds = [uint64] [math]::Floor(((Get-Date).ToUniversalTime() - $boot).TotalSeconds)
}
Write-Output ('##salve-result## ' + (ConvertTo-Json -InputObject $answer -Depth 8 -Compress))
