# salve-script: exchange_verify
# Check the server after an update (contract: VerifyRequest -> VerifyAnswer): the ExSetup.exe
# build equals the expected one, the KB is listed, no Exchange service is Disabled, every
# Automatic one runs, every component is Active (except ForwardSyncDaemon and ProvisioningRps,
# inactive on-premises by design), OWA answers on this server, no restart is pending.

$installPath = (Get-ItemProperty -LiteralPath 'HKLM:\SOFTWARE\Microsoft\ExchangeServer\v15\Setup' -Name 'MsiInstallPath' -ErrorAction SilentlyContinue).MsiInstallPath
$build = $null
if ($installPath) {
    $exSetup = Join-Path $installPath 'bin\ExSetup.exe'
    if (Test-Path -LiteralPath $exSetup) {
        $v = (Get-Item -LiteralPath $exSetup).VersionInfo
        $build = '{0}.{1}.{2}.{3}' -f $v.FileMajorPart, $v.FileMinorPart, $v.FileBuildPart, $v.FilePrivatePart
    }
}
$buildMatches = $null
if ($SalveArgs.expected_build) {
    $buildMatches = ($null -ne $build) -and (([version] $build) -eq ([version] $SalveArgs.expected_build))
}

$kbPresent = $null
if ($SalveArgs.expected_kb) {
    $kb = [string] $SalveArgs.expected_kb
    $names = New-Object System.Collections.Generic.List[string]
    foreach ($root in @('HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall', 'HKLM:\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall')) {
        Get-ChildItem -LiteralPath $root -ErrorAction SilentlyContinue | ForEach-Object {
            $n = (Get-ItemProperty -LiteralPath $_.PSPath -ErrorAction SilentlyContinue).DisplayName
            if ($n -like 'Security Update for Exchange Server*') { $names.Add([string] $n) }
        }
    }
    foreach ($year in @('2013', '2016', '2019')) {
        Get-ChildItem -LiteralPath "HKLM:\SOFTWARE\Microsoft\Updates\Exchange $year" -ErrorAction SilentlyContinue | ForEach-Object {
            $n = (Get-ItemProperty -LiteralPath $_.PSPath -ErrorAction SilentlyContinue).PackageName
            if ($n) { $names.Add([string] $n) }
        }
    }
    $kbPresent = @($names | Where-Object { $_ -like "*$kb*" }).Count -gt 0
}

# Services an Exchange CU or SU stops and disables besides those named "Microsoft Exchange*",
# and leaves Disabled when it fails: IIS, WMI, Remote Registry, Performance Logs & Alerts,
# Application Identity, filtering management, search tracing.
$salveServices = @('W3SVC', 'IISADMIN', 'WAS', 'Winmgmt', 'RemoteRegistry', 'pla', 'AppIDSvc', 'FMS', 'SearchExchangeTracing')
function Read-SalveServices {
    $script:services = @(Get-Service -ErrorAction SilentlyContinue | Where-Object {
            $_.DisplayName -like 'Microsoft Exchange*' -or $_.Name -in $salveServices
        })
    $script:disabled = @($script:services | Where-Object { [string] $_.StartType -eq 'Disabled' } | ForEach-Object { [string] $_.Name })
    $script:stopped = @($script:services | Where-Object { [string] $_.StartType -eq 'Automatic' -and [string] $_.Status -ne 'Running' } |
            ForEach-Object { [string] $_.Name })
}
Read-SalveServices

# Automatic (Delayed Start) services start about two minutes after boot (AutoStartDelay), and
# Get-Service shows them as Automatic and Stopped until then: when the server booted recently,
# give stopped Automatic services up to $serviceWaitSeconds before reporting them.
$recentBootMinutes = 15
$serviceWaitSeconds = 300
$bootTime = (Get-CimInstance -ClassName Win32_OperatingSystem).LastBootUpTime
$waitUntil = (Get-Date).AddSeconds($serviceWaitSeconds)
while ($stopped.Count -gt 0 -and ((Get-Date) - $bootTime).TotalMinutes -lt $recentBootMinutes -and (Get-Date) -lt $waitUntil) {
    Write-Output ('Booted recently; waiting for Automatic services to start: {0}' -f ($stopped -join ', '))
    Start-Sleep -Seconds 15
    Read-SalveServices
}

$inactive = @()
# Exchange's own management shell, loaded the supported way, as Microsoft's CSS-Exchange scripts
# load it (Shared/Confirm-ExchangeShell.ps1): RemoteExchange.ps1 and Connect-ExchangeServer
# -Auto, a Remote PowerShell session to this server under RBAC (the snap-in would bypass RBAC).
# An Edge Transport server has no Remote PowerShell: there, the snap-ins its exShell.psc1 lists
# and Exchange.ps1. Either reaches Active Directory as this process's account, so salve runs
# this script where that account has network credentials (a scheduled task under `become`).
try {
    if (-not (Get-Command Get-ExchangeServer -ErrorAction SilentlyContinue)) {
        # Microsoft's scripts run with their own error preference, not the prelude's 'Stop'
        # (scripts/README.md, rule 3): a harmless error while they load must not stop them.
        $salvePreference = $ErrorActionPreference
        $ErrorActionPreference = 'Continue'
        try {
            if (Test-Path -LiteralPath 'HKLM:\SOFTWARE\Microsoft\ExchangeServer\v15\EdgeTransportRole') {
                [xml] $exShell = Get-Content -LiteralPath (Join-Path $env:ExchangeInstallPath 'Bin\exShell.psc1') -ErrorAction Stop
                foreach ($snapIn in $exShell.PSConsoleFile.PSSnapIns.PSSnapIn) { Add-PSSnapin -Name $snapIn.Name -ErrorAction Stop }
                . (Join-Path $env:ExchangeInstallPath 'bin\Exchange.ps1')
            } else {
                . (Join-Path $env:ExchangeInstallPath 'bin\RemoteExchange.ps1')
                Connect-ExchangeServer -Auto -ClientApplication:ManagementShell
            }
        } finally {
            $ErrorActionPreference = $salvePreference
        }
    }
    if (-not (Get-Command Get-ExchangeServer -ErrorAction SilentlyContinue)) {
        $why = if ($Error.Count -gt 0) { [string] $Error[0] } else { 'Connect-ExchangeServer found no server' }
        throw "Exchange's management shell could not be loaded: $why"
    }
    $inactive = @(Get-ServerComponentState -Identity $env:COMPUTERNAME | Where-Object {
            [string] $_.State -ne 'Active' -and [string] $_.Component -notin @('ForwardSyncDaemon', 'ProvisioningRps')
        } | ForEach-Object { [string] $_.Component })
} catch {
    $inactive = @("(component states not readable: $($_.Exception.Message))")
}

# OWA logon page on this server; the certificate is not checked (it names the public host).
$owaStatus = 0
$owaError = $null
$owaLocation = $null
try {
    Add-Type -TypeDefinition @'
using System.Net;
using System.Security.Cryptography.X509Certificates;
public class SalveTrustAll : ICertificatePolicy {
    public bool CheckValidationResult(ServicePoint sp, X509Certificate cert, WebRequest req, int problem) { return true; }
}
'@ -ErrorAction SilentlyContinue
    [Net.ServicePointManager]::CertificatePolicy = New-Object SalveTrustAll
    [Net.ServicePointManager]::SecurityProtocol = [Net.ServicePointManager]::SecurityProtocol -bor [Net.SecurityProtocolType]::Tls12
    $response = Invoke-WebRequest -Uri 'https://localhost/owa/auth/logon.aspx' -UseBasicParsing -TimeoutSec 60 -MaximumRedirection 0
    $owaStatus = [int] $response.StatusCode
    # Windows PowerShell 5.1 returns a redirect it may not follow here, or throws it below.
    $owaLocation = [string] $response.Headers['Location']
} catch [System.Net.WebException] {
    $r = $_.Exception.Response
    if ($r) {
        $owaStatus = [int] $r.StatusCode
        $owaLocation = [string] $r.Headers['Location']
        $reader = New-Object System.IO.StreamReader($r.GetResponseStream())
        $body = $reader.ReadToEnd()
        $owaError = ($body -split "`n" | Where-Object { $_.Trim() } | Select-Object -First 1)
        $m = [regex]::Match($body, '<title>(.*?)</title>', 'IgnoreCase')
        if ($m.Success) { $owaError = $m.Groups[1].Value }
    } else {
        $owaError = $_.Exception.Message
    }
}

$pending = New-Object System.Collections.Generic.List[string]
$sm = 'HKLM:\SYSTEM\CurrentControlSet\Control\Session Manager'
# Decided by the values: an empty rename list or Flags of 0 is left behind and means nothing.
$renames = @((Get-ItemProperty -LiteralPath $sm -Name 'PendingFileRenameOperations' -ErrorAction SilentlyContinue).PendingFileRenameOperations | Where-Object { $_ })
if ($renames.Count -gt 0) { $pending.Add("$sm\PendingFileRenameOperations") }
foreach ($key in @('HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\RebootPending',
        'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired')) {
    if (Test-Path -LiteralPath $key) { $pending.Add($key) }
}
$flags = (Get-ItemProperty -LiteralPath 'HKLM:\SOFTWARE\Microsoft\Updates\UpdateExeVolatile' -Name 'Flags' -ErrorAction SilentlyContinue).Flags
if ($null -ne $flags -and [int] $flags -ne 0) {
    $pending.Add('HKLM:\SOFTWARE\Microsoft\Updates\UpdateExeVolatile\Flags')
}

# A healthy OWA answers 200 (forms sign-in), 401 (Windows or OAuth authentication on the
# virtual directory) or a 302 to a sign-in page (AD FS claims authentication, hybrid modern
# authentication); a 302 to errorFE.aspx is Exchange's own error page.
$owaHealthy = ($owaStatus -eq 200) -or ($owaStatus -eq 401) -or
    ($owaStatus -eq 302 -and $owaLocation -and $owaLocation -notmatch 'errorFE\.aspx')
if ($owaHealthy) { $owaError = $null }
$success = ($null -ne $build) -and ($buildMatches -ne $false) -and ($kbPresent -ne $false) -and
    ($disabled.Count -eq 0) -and ($stopped.Count -eq 0) -and ($inactive.Count -eq 0) -and $owaHealthy
$answer = [ordered]@{
    build                      = $build
    build_matches              = $buildMatches
    kb_present                 = $kbPresent
    disabled_services          = @($disabled)
    stopped_automatic_services = @($stopped)
    inactive_components        = @($inactive)
    owa_status                 = [uint16] $owaStatus
    owa_error                  = $owaError
    owa_location               = $owaLocation
    pending_reboot             = @($pending.ToArray())
    success                    = [bool] $success
}
Write-Output ('##salve-result## ' + (ConvertTo-Json -InputObject $answer -Depth 8 -Compress))
if (-not $success) { exit 1 }
